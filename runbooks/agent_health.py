"""agent-health: is each workload cluster's Prometheus Agent delivering, and if not, why?

Per workload cluster, read-only:
1. readiness and each remote-write queue over `rate_window`: sent, failed, retried, dropped,
   pending samples, shards vs desired vs max, lag (newest appended - newest sent timestamp);
2. the WAL: size (the metric where exported, else its directory on the pod's volume when
   readable here) and growth, failed writes, corruptions;
3. the log of the last `log_window` seconds (wk_agent_log_path, else the pod log through the
   Kubernetes API), remote-write error lines classified with counts and an example each:
   4xx (dropped), 5xx (retried), connection refused, DNS, out of order, out of bounds, timeout.
"""

from __future__ import annotations

import string
from typing import Any

from pydantic import Field

from runbooks.errors import PreconditionFailed
from runbooks.inventory import ClusterConfig
from runbooks.model import AGENTS, Params, Runbook, RunContext

LOG_PATH_FIELDS = {"namespace", "pod"}


def log_path_problem(cluster: ClusterConfig) -> str | None:
    """Why the cluster's wk_agent_log_path cannot be used, or None (empty is fine)."""
    path = cluster.agent_log_path
    if not path:
        return None
    if not path.startswith("/"):
        return (f"{cluster.name}: wk_agent_log_path {path!r} is not absolute; give the full"
                " path, e.g. /var/log/pods/{namespace}_{pod}.log")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(path) if f is not None}
    except ValueError as exc:
        return f"{cluster.name}: wk_agent_log_path {path!r} does not parse: {exc}"
    unknown = names - LOG_PATH_FIELDS
    if unknown:
        return (f"{cluster.name}: wk_agent_log_path {path!r} uses {sorted(unknown)}; only"
                " {namespace} and {pod} are known")
    return None


def require_workload(runbook: str, ctx: RunContext) -> list[ClusterConfig]:
    """The selected workload clusters (the framework selects only those: applies_to AGENTS),
    each with a usable log path; refuse otherwise."""
    workload = [c for c in ctx.clusters if c.role == "workload"]
    for cluster in workload:
        problem = log_path_problem(cluster)
        if problem:
            raise PreconditionFailed(problem)
    return workload


class AgentHealthParams(Params):
    rate_window: float = Field(
        5.0, gt=0, le=300, description="seconds between the two /metrics samples that give"
        " rates and WAL growth")
    log_window: float = Field(
        600.0, gt=0, le=86400, description="seconds of the agent's log to classify")


class AgentHealth(Runbook):
    name = "agent-health"
    summary = ("Prometheus Agent: remote-write queues (pending, shards, lag), WAL size and"
               " growth, log errors classified (4xx, 5xx, refused, DNS, out of order/bounds)")
    playbook = "agent-health.yml"
    Params = AgentHealthParams
    applies_to = AGENTS
    requires = ("kube_context",)

    def validate(self, ctx: RunContext) -> None:
        require_workload(self.name, ctx)

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        params: Any = ctx.params
        return {"rate_window": params.rate_window, "log_window": params.log_window}
