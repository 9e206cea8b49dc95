"""Emergency (operations guide chapter): diagnose and remediate a fault in progress; without
--yes they run in check mode.

Runbooks: receiver-down (receiver_down.py), remote-write-failing and metrics-missing
(emergency.py).
"""
