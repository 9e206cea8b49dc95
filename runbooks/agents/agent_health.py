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

from typing import Any

from pydantic import Field

from runbooks.gates import require_workload
from runbooks.model import AGENTS, Params, Runbook, RunContext


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

    def extravars(self, ctx: RunContext[AgentHealthParams]) -> dict[str, Any]:
        params = ctx.params
        return {"rate_window": params.rate_window, "log_window": params.log_window}
