"""restart-agent: restart a workload cluster's Prometheus Agent and prove it delivers again.

1. validate: workload clusters with a kube context; a usable wk_agent_log_path;
2. pre-gate: the agent's StatefulSet will recreate the pod (replicas >= 1, the pod is its own)
   and the WAL survives the restart (a volumeClaimTemplate, not an emptyDir);
3. playbook: delete the pod (check mode: a server-side dry run); wait for the new pod Ready;
   prove a new process replayed the WAL (start time, replay duration, series, log lines);
   wait until every remote-write queue sends samples newer than the restart with a lag under
   wk_threshold_remote_write_lag_seconds;
4. post-gate: read independently that the agent is Ready and every queue's lag is under the
   threshold.
A restart cannot be undone: there is no rollback. Samples the agent had not sent before the
restart are not resent (the WAL watcher starts at the restart): a restart fixes delivery from
now on, it does not recover a gap.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks import platform
from runbooks.clients import kube_api
from runbooks.gates import delivering, require_workload
from runbooks.inventory import READY_TIMEOUT, ClusterConfig
from runbooks.model import AGENTS, Gate, GateResult, Params, Runbook, RunContext

STATEFULSET = "prometheus-agent"


class RestartAgentParams(Params):
    pod: str = Field("", description="the agent pod to restart (default the StatefulSet's"
                     " first)")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, le=3600,
                                 description="seconds for the new pod to be Ready")
    catchup_timeout: float = Field(
        180.0, gt=0, le=3600, description="seconds for remote write to catch up after Ready")


def recreatable(ctx: RunContext[RestartAgentParams], cluster: ClusterConfig) -> GateResult:
    """The StatefulSet recreates the pod and keeps its WAL on a claim."""
    if cluster.role != "workload":
        return GateResult(True, "not a workload cluster: nothing to restart")
    kube = platform.kube
    params = ctx.params
    sts, pods = kube.statefulset_pods(kube_api(cluster), cluster.namespace, STATEFULSET)
    problems = []
    if (sts.spec.replicas or 0) < 1:
        problems.append(f"StatefulSet {STATEFULSET} has {sts.spec.replicas} replicas: a deleted"
                        " pod would not come back")
    if not sts.spec.volume_claim_templates:
        problems.append(f"StatefulSet {STATEFULSET} has no volumeClaimTemplates: the WAL (the"
                        " only copy of unsent samples) would be lost with the pod")
    wanted = [p for p in pods if not params.pod or p.metadata.name == params.pod]
    if not wanted:
        problems.append(f"no pod {params.pod or STATEFULSET + '-*'} in {cluster.namespace}")
    if problems:
        return GateResult(False, "; ".join(problems))
    pod = wanted[0]
    claims = ", ".join(t.metadata.name for t in sts.spec.volume_claim_templates)
    return GateResult(True, f"{cluster.namespace}/{pod.metadata.name} belongs to StatefulSet"
                      f" {STATEFULSET} ({sts.spec.replicas} replica(s)), WAL on claim {claims}")


class RestartAgent(Runbook):
    name = "restart-agent"
    summary = ("Restart the Prometheus Agent pod, prove the WAL replayed and remote write"
               " caught up under the lag threshold")
    mutating = True
    playbook = "restart-agent.yml"
    Params = RestartAgentParams
    changes = ("deletes the agent pod of each selected workload cluster; its StatefulSet"
               " recreates it with the current configuration")
    rollback = ("none: a restart cannot be undone; samples not sent before it are not resent")
    applies_to = AGENTS
    requires = ("kube_context",)
    pre_gates = (Gate("agent recreatable", "the StatefulSet recreates the pod and keeps its"
                      " WAL on a claim", recreatable),)
    post_gates = (Gate("agent delivering", "Ready, every queue's lag under"
                       " wk_threshold_remote_write_lag_seconds", delivering),)

    def validate(self, ctx: RunContext) -> None:
        require_workload(self.name, ctx)

    def extravars(self, ctx: RunContext[RestartAgentParams]) -> dict[str, Any]:
        params = ctx.params
        return {"pod": params.pod, "ready_timeout": params.ready_timeout,
                "catchup_timeout": params.catchup_timeout}
