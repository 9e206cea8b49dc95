"""Upgrades (operations guide chapter), empty for now.

What will live here: the upgrade and GitOps runbooks (component version upgrades rolled out
through the config repository and ArgoCD, with their gates and rollbacks).
"""
