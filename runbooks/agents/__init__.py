"""Agents (operations guide chapter): the Prometheus Agents of the workload clusters and the
HA Prometheus servers: health, restart, hashmod shards, HA replicas.

Runbooks: agent-health, restart-agent, scale-agents, scale-prometheus.
"""
