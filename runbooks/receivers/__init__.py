"""Receivers and scaling (operations guide chapter): Thanos Receive's hashring, scaling the
receivers, their health and their resources.

Runbooks: hashring, scale-receivers, receiver-health, tune-resources.
"""
