"""Updates and patches (operations guide chapter): component upgrades rolled out through the
GitOps repository and ArgoCD, with their gates and their revert.

Runbooks: upgrade-chart (upgrade_chart.py).
"""
