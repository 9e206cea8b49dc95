"""Disaster recovery (operations guide chapter), empty for now.

What will live here: the DR drills (rebuilding a cluster's monitoring from backups and
proving it: restore, replay, verify end to end).
"""
