"""Emergency runbooks for delivery: remote-write-failing and metrics-missing.

1. diagnose: the diagnostics' own module (diagnose-remote-write's ranking; for metrics-missing
   first diagnose-missing-metrics: which expected job of which cluster is missing, since when);
2. remediate the known causes, each only when the diagnosis names it: the agent's objects
   drifted from git (a ConfigMap edited or a StatefulSet scaled by hand: what ArgoCD shows as
   OutOfSync) are re-synced from git when the inventory names the agent's ArgoCD Application
   (wk_agent_application; wk_resync_mode argocd asks ArgoCD, apply server-side applies the
   Application's path), proven by an empty diff afterwards; an agent writing to a
   failing URL other than the inventory's wk_receive_remote_write_url is re-pointed (the URL in
   its ConfigMap, nothing else) and restarted (restart-agent's module: WAL replay proven,
   catch-up awaited); a configuration change not loaded or a stuck queue is restarted. A scrape
   target that is down, or receivers that are down, have no remedy here: the run names them
   (receiver-down handles receivers);
3. verify: Ready, the lag under wk_threshold_remote_write_lag_seconds, the missing jobs fresh
   in Query (the playbook's last task, then a post-gate read independently);
4. report what changed (the journal: the ConfigMap diff, the restart).
Without --yes they run in check mode: the diagnosis and what would be done (server-side dry
runs, the drift as a diff). ArgoCD self-heal reverts an imperative ConfigMap patch: fix the URL
in Git as well.
"""

from __future__ import annotations

from pydantic import Field

from runbooks.gates import delivering, jobs_fresh, require_workload
from runbooks.inventory import READY_TIMEOUT
from runbooks.model import AGENTS, Gate, Params, Runbook, RunContext


class RemoteWriteFailingParams(Params):
    rate_window: float = Field(5.0, gt=0, le=300, description="seconds between the two samples"
                               " of the agent's queue metrics")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, le=3600,
                                 description="seconds for the restarted agent to be Ready")
    catchup_timeout: float = Field(180.0, gt=0, le=3600,
                                   description="seconds for remote write to catch up")
    verify_timeout: float = Field(120.0, ge=0, le=3600,
                                  description="seconds the verification may wait for recovery")
    resync_timeout: float = Field(120.0, gt=0, le=3600,
                                  description="seconds ArgoCD may take to complete a requested"
                                  " re-sync (wk_resync_mode: argocd)")


class RemoteWriteFailing(Runbook):
    name = "remote-write-failing"
    summary = ("Emergency: diagnose an agent's failing remote write, re-point it to the"
               " inventory's URL and/or restart it, verify the lag (asks for --yes)")
    mutating = True
    requires_confirmation = True
    playbook = "remote-write-failing.yml"
    Params = RemoteWriteFailingParams
    changes = ("the agent's objects drifted from git, re-synced (wk_agent_application); the"
               " agent's ConfigMap remote_write url, when it is a failing URL other than"
               " wk_receive_remote_write_url; deletes the agent pod (restart) when re-pointed,"
               " or when its configuration is not loaded or its queue is stuck")
    rollback = ("none: the ConfigMap diff is in the journal; a restart cannot be undone")
    applies_to = AGENTS
    requires = ("kube_context", "receive_remote_write_url")
    post_gates = (Gate("agent delivering", "Ready, every queue's lag under"
                       " wk_threshold_remote_write_lag_seconds", delivering),)

    def validate(self, ctx: RunContext) -> None:
        require_workload(self.name, ctx)


class MetricsMissingParams(RemoteWriteFailingParams):
    lookback: float = Field(3600.0, gt=0, le=7 * 86400,
                            description="seconds Query looks back for a job's last sample")
    stale_seconds: float = Field(0.0, ge=0, description="a job whose newest sample is older is"
                                 " missing (0: wk_threshold_remote_write_lag_seconds)")


class MetricsMissing(Runbook):
    name = "metrics-missing"
    summary = ("Emergency: which expected jobs are missing in Query and since when; remediate"
               " the agent's delivery (re-point, restart), verify freshness (asks for --yes)")
    mutating = True
    requires_confirmation = True
    playbook = "metrics-missing.yml"
    Params = MetricsMissingParams
    changes = RemoteWriteFailing.changes + "; only for clusters whose agent does not deliver"
    rollback = RemoteWriteFailing.rollback
    applies_to = AGENTS
    requires = ("kube_context", "query_url")
    post_gates = (Gate("jobs fresh", "every wk_expected_jobs job fresh and up in Query",
                       jobs_fresh),)

    def validate(self, ctx: RunContext) -> None:
        require_workload(self.name, ctx)
