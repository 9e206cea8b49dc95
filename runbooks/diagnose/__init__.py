"""Troubleshooting (operations guide chapter): read-only diagnostics that rank the likely
causes of a fault.

Runbooks: diagnose-remote-write, diagnose-receiver-connectivity, diagnose-missing-metrics,
diagnose-disk-space, diagnose-network (diagnose.py).
"""
