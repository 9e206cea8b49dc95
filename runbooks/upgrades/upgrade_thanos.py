"""upgrade-thanos and upgrade-prometheus: upgrade-chart, version-aware, for the platform's own
programs.

Both plan as upgrade-chart does, and the plan reads the release notes' breaking changes
between the running and the new version of each workload's program (found by its image):
Thanos' ketama hashring refusing fewer endpoints than the replication factor (v0.32), the RF=2
quorum change (v0.37), the Cap'n Proto replication listener (v0.40); Prometheus 3's `--agent`
flag replacing `--enable-feature=agent`, its removed feature flags, UTF-8 names, scrape
protocol and `le` normalization changes. A note whose check fails on the new objects refuses
the upgrade before anything is committed; the others are listed in the report. A downgrade is
refused unless `-e allow_downgrade=true`.

upgrade-thanos on the receivers rolls them one at a time: the StatefulSet's partition is held
in a Kustomize patch (watchkeeper-rollout.yaml) committed with the new version, then lowered
by one commit per receiver from the highest ordinal; each receiver must be Ready on the new
revision, report the new version and the same ring hash as every other receiver, and hold
`settle` seconds, before the next. The steady-state gate (receivers, ring, write errors,
agents' lag) runs before and after, the canary after. A failure anywhere reverts the run's
commits (the receivers already rolled go back), and the journal names the receivers rolled
and those not yet; a re-run continues from the partition git holds.

upgrade-prometheus upgrades the agents' chart on workload clusters (the chart renders each
version's flags: `--agent` for 3.x) and proves after it that the agent delivers again and
the cluster's expected jobs are fresh in Query (both awaited up to settle_timeout).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks.gates import (
    application_deployed,
    awaited,
    canary_after_change,
    delivering,
    jobs_fresh,
    steady_state,
)
from runbooks.model import AGENTS, RECEIVERS, Gate, RunContext
from runbooks.upgrades.upgrade_chart import UpgradeChart, UpgradeChartParams


class UpgradeThanosParams(UpgradeChartParams):
    component: str = Field("thanos-receive", description="thanos-receive, thanos-query or"
                           " thanos-store (its Application: wk_argocd_application_template)")
    one_at_a_time: bool = Field(True, description="roll the receivers one at a time, each"
                                " proven (thanos-receive only)")
    settle: float = Field(5.0, ge=0, le=600, description="seconds to hold after each receiver"
                          " before the next")
    settle_timeout: float = Field(60.0, ge=0, le=3600,
                                  description="seconds the steady-state gate may wait")


class UpgradeThanos(UpgradeChart):
    name = "upgrade-thanos"
    summary = ("Upgrade Thanos by its chart, version-aware (release notes checked), receivers"
               " one at a time with ring-hash proof, gates and a revert commit on failure")
    Params = UpgradeThanosParams
    applies_to = RECEIVERS
    changes = ("commits to the GitOps repository: the chart version (and values), then the"
               " receivers' rollout partition lowered one receiver per commit")
    pre_gates = (Gate("deployed before", "the component's Application Synced and Healthy",
                      application_deployed),
                 Gate("steady state", "receivers Ready and on the ring, no write errors,"
                      " agents' lag low", steady_state))
    post_gates = (Gate("deployed", "the component's Application Synced and Healthy",
                       application_deployed),
                  Gate("steady state", "receivers Ready and on the ring, no write errors,"
                       " agents' lag low", steady_state),
                  Gate("canary in Query", "a canary sample written after the change reaches"
                       " Query (wk_canary_query)", canary_after_change))

    def extravars(self, ctx: RunContext[Any]) -> dict[str, Any]:
        params = ctx.params
        out = super().extravars(ctx)
        if params.one_at_a_time and params.component == "thanos-receive":
            out["wk_rollout"] = {c.name: c.receive_statefulset for c in ctx.clusters}
            out["rollout_verify"] = "thanos_receive"
        return out


class UpgradePrometheusParams(UpgradeChartParams):
    component: str = Field("prometheus-agent", description="the agents' component (its"
                           " Application: wk_argocd_application_template)")
    settle_timeout: float = Field(120.0, ge=0, le=3600, description="seconds the restarted"
                                  " agents may take to deliver and their jobs to be fresh")


class UpgradePrometheus(UpgradeChart):
    name = "upgrade-prometheus"
    summary = ("Upgrade the Prometheus Agents by their chart, version-aware (2 -> 3: --agent,"
               " removed flags), gates incl. delivery, a revert commit on failure")
    Params = UpgradePrometheusParams
    applies_to = AGENTS
    post_gates = (Gate("deployed", "the component's Application Synced and Healthy",
                       application_deployed),
                  Gate("agent delivering", "Ready, every queue's lag under"
                       " wk_threshold_remote_write_lag_seconds (awaited: settle_timeout)",
                       awaited(delivering)),
                  Gate("jobs fresh", "every wk_expected_jobs job of the cluster fresh and up"
                       " in Query (awaited: settle_timeout)", awaited(jobs_fresh)))
