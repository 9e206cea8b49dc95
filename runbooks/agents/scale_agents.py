"""scale-agents: share a workload cluster's scrape targets over N Prometheus Agents.

Design (plugins/module_utils/agent_shards.py). The lab runs Debian's Prometheus 2.42 as the
agent. Prometheus 2.x expands environment variables only in external labels (and only with
`--enable-feature=expand-external-labels`), never in relabel rules, so one StatefulSet with N
replicas cannot tell each pod its shard number for a `hashmod` keep. As the Prometheus Operator
does, each shard is therefore its own StatefulSet with its own ConfigMap: shard 0 is the agent
as deployed (`prometheus-agent`, `prometheus-agent-config`), shard i is
`prometheus-agent-shard-i` (one replica, its own claim for its WAL) with
`prometheus-agent-shard-i-config`. Every scrape job of shard i of N ends with a `hashmod` of
`__address__` (modulus N) into a temporary label and a `keep` of i: the shards' targets are
disjoint and together all of them, and the assignment is predictable (MD5, as Prometheus).

No shard external label, on purpose. The receivers see a target's series with the same labels
whichever shard scrapes it, so in steady state every series arrives from exactly one shard and
a target that moves keeps its series identity (rates, dashboards and alerts continue). A shard
label would make every moved target a new series and, for Query's 5-minute lookback, count it
twice. The price: while a target moves, the old and new shard may both send it for a scrape
interval or two; the receivers drop the identical samples or reject the interleaved ones as
out of order (409, not retried): duplicates, never a gap. Nothing else needs the label: the
shard's own metrics (its /metrics, remote-write queue) are read from the pod.

The procedure:
1. validate: workload clusters with a kube context; 1 <= shards <= 16; replicas == 1 (agents
   are sharded, not HA-replicated); an agent that is an ArgoCD Application
   (wk_agent_application) is refused unless `allow_drift`: self-heal would revert shard 0's
   ConfigMap (commit the shards to git instead, or pause self-heal); the module refuses a state
   it does not recognise (shards not contiguous from 0, a shard with more than one replica,
   shard 0 not Ready);
2. pre-gate: every shard Ready and delivering (remote-write lag under the threshold); the
   series per job in Query (`count by (job) (up{cluster=...})`) recorded as the baseline;
3. up: the new shards' ConfigMaps and StatefulSets with the new modulus, each Ready, reporting
   the new modulus at /api/v1/status/config, discovering every target and scraping only its
   own; then each existing shard reconfigured (ConfigMap, restart) and proven the same way.
   down: the remaining shards reconfigured first (every target scraped again), every surplus
   shard's remote-write queue drained (nothing pending, sent up to what it ingested), then the
   surplus StatefulSets and ConfigMaps removed (claims kept: the WAL is evidence). At one shard
   shard 0's file is restored byte for byte (kept meanwhile in an annotation): no drift;
4. post-gate: every discovered target active on exactly one shard (each shard's
   /api/v1/targets), every shard with targets delivering, Query's series per job as before
   (no target lost, none doubled);
5. rollback: a failed step in the module restores the ConfigMaps, restarts the shards it
   reconfigured and removes those it created; a failed post-gate runs
   scale-agents-rollback.yml, the same procedure back to the start count (so a surplus shard
   is again drained before it goes, however long the receivers are away).
Check mode prints the plan, the predicted assignment and every target that would move, and
sends each write as a server-side dry run (the API server validates the new objects); with
--diff the objects themselves. GitOps: the agent's objects are git's; this runbook does not
commit shards to the config repository yet (see validate's refusal for what to do).
HA replicas are for full Prometheus servers (identical servers, a unique `replica` external
label, Query deduplicating on it): that is scale-prometheus (runbooks/agents/scale_prometheus.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import Field, field_validator

from runbooks import platform
from runbooks.clients import kube_api
from runbooks.errors import PreconditionFailed
from runbooks.gates import require_workload
from runbooks.inventory import READY_TIMEOUT, ClusterConfig
from runbooks.model import AGENTS, Gate, GateResult, Params, Runbook, RunContext

MAX_SHARDS = 16
#: Every shard's pods carry the agent's name label (the shard StatefulSets copy it).
AGENT_SELECTOR = "app.kubernetes.io/name=prometheus-agent"


class ScaleAgentsParams(Params):
    shards: int = Field(..., ge=1, le=MAX_SHARDS, description="the number of agents that share"
                        " the cluster's scrape targets")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, description="seconds for a shard to be Ready"
                                 " with its new configuration")
    drain_timeout: float = Field(300.0, gt=0, description="seconds for a surplus shard's"
                                 " remote-write queue to drain before it is removed")
    settle_timeout: float = Field(120.0, ge=0, description="seconds the post-gate waits for"
                                  " Query's series per job to match the baseline")
    allow_drift: bool = Field(False, description="scale an agent that is an ArgoCD Application"
                              " although self-heal may revert shard 0's ConfigMap")
    replicas: int = Field(1, description="HA replicas per shard: only 1 (agents are sharded,"
                          " not HA-replicated)")

    @field_validator("replicas")
    @classmethod
    def _agents_are_not_replicated(cls, value: int) -> int:
        if value != 1:
            raise ValueError(
                "agents are sharded, not HA-replicated: two agents with the same targets"
                " remote-write every series twice under the same labels (an agent has no"
                " replica label Thanos Query could deduplicate on); set -e shards=N to share"
                " the targets over N agents instead, and keep replicas=1. HA replicas (replica"
                " external label, Query --query.replica-label) are for full Prometheus servers:"
                " scale-prometheus")
        return value


_BASELINE: dict[tuple[str, str], dict[str, int]] = {}


def series_per_job(cluster: ClusterConfig) -> dict[str, int]:
    """`up` series per job of the cluster in Thanos Query: one per scraped target."""
    label = cluster.cluster or cluster.name
    rows, error = platform.promhttp.query(
        str(cluster.query_url), f'count by (job) (up{{cluster="{label}"}})', 10)
    if error:
        raise PreconditionFailed(f"{cluster.name}: Query: {error}")
    return {str(r["metric"].get("job")): int(r["value"]) for r in rows}


def unready_shards(cluster: ClusterConfig) -> list[str]:
    """The agent's pods (every shard) that are not Ready."""
    kube = platform.kube
    return sorted(p.metadata.name for p in kube.core(kube_api(cluster)).list_namespaced_pod(
        cluster.namespace, label_selector=AGENT_SELECTOR).items if not kube.is_ready(p))


def baseline(ctx: RunContext, cluster: ClusterConfig) -> GateResult:
    """Every shard Ready and delivering; the series per job recorded for the post-gate."""
    unready = unready_shards(cluster)
    if unready:
        return GateResult(False, f"{', '.join(unready)} not Ready: make every shard Ready"
                          " first (agent-health, restart-agent)")
    result = shards_delivering(ctx, cluster)
    if not result.ok or cluster.query_url is None:
        return result
    jobs = series_per_job(cluster)
    _BASELINE[(ctx.run_id, cluster.name)] = jobs
    return GateResult(True, f"{result.evidence}; baseline series per job {jobs}")


def shard_targets(cluster: ClusterConfig) -> dict[str, tuple[list[str], list[str]]]:
    """{shard pod: (active, dropped) scrape addresses} of every shard of the agent."""
    kube = platform.kube
    client = kube_api(cluster)
    found = {}
    for pod in kube.core(client).list_namespaced_pod(
            cluster.namespace, label_selector=AGENT_SELECTOR).items:
        if not kube.is_ready(pod):
            continue
        body = json.loads(kube.proxy_get(client, cluster.namespace, pod.metadata.name, 9090,
                                         "api/v1/targets"))["data"]
        found[pod.metadata.name] = (
            sorted(t["discoveredLabels"]["__address__"] for t in body["activeTargets"]),
            sorted(t["discoveredLabels"]["__address__"]
                   for t in body.get("droppedTargets") or []))
    return found


def partition_problems(found: dict[str, tuple[list[str], list[str]]], shards: int) -> list[str]:
    """What keeps `found` ({shard pod: (active, dropped)}) from being `shards` shards that
    each scrape their own targets: a target on no shard or on two, a shard missing."""
    every = sorted({t for active, dropped in found.values() for t in active + dropped})
    owners: dict[str, list[str]] = {t: [] for t in every}
    for pod, (active, _) in found.items():
        for target in active:
            owners[target].append(pod)
    problems = [f"{t} on {len(o)} shards ({', '.join(o) or 'none'})"
                for t, o in owners.items() if len(o) != 1]
    if len(found) != shards:
        problems.insert(0, f"{len(found)} Ready shards, {shards} wanted")
    return problems


def partitioned(ctx: RunContext[ScaleAgentsParams], cluster: ClusterConfig) -> GateResult:
    """Every discovered target active on exactly one shard, as many shards as asked. Waits
    up to settle_timeout: a Prometheus that just started answers before its scrape manager
    has applied the targets discovery found (updates are batched every few seconds)."""
    params = ctx.params

    def check() -> tuple[bool, tuple[dict[str, tuple[list[str], list[str]]], list[str]]]:
        found = shard_targets(cluster)
        problems = partition_problems(found, params.shards)
        return not problems, (found, problems)

    _, (found, problems), _ = platform.kube.wait_for(
        "targets partitioned", check, params.settle_timeout, every=5.0)
    if problems:
        return GateResult(False, "; ".join(problems))
    every = sorted({t for active, dropped in found.values() for t in active + dropped})
    share = ", ".join(f"{pod}: {len(active)}" for pod, (active, _) in sorted(found.items()))
    return GateResult(True, f"{len(every)} targets, each on exactly one shard ({share})")


def series_unchanged(ctx: RunContext[ScaleAgentsParams], cluster: ClusterConfig) -> GateResult:
    """Query's series per job equal to the baseline (waits up to settle_timeout)."""
    before = _BASELINE.get((ctx.run_id, cluster.name))
    if before is None or cluster.query_url is None:
        return GateResult(True, "no baseline (no wk_query_url)")
    params = ctx.params

    def check() -> tuple[bool, dict[str, int]]:
        after = series_per_job(cluster)
        return after == before, after

    _, after, _ = platform.kube.wait_for("series per job", check,
                                         params.settle_timeout, every=5.0)
    if after != before:
        return GateResult(False, f"series per job {after} != before {before}")
    return GateResult(True, f"series per job as before: {after}")


def shards_delivering(ctx: RunContext[ScaleAgentsParams], cluster: ClusterConfig) -> GateResult:
    """Every shard with targets sends what it scrapes (lag under the threshold, samples sent
    since it started); a shard without targets has nothing to send. Waits up to
    settle_timeout: a restarted shard needs a scrape and a send."""
    kube = platform.kube
    promtext = platform.promtext
    agent_health = platform.agent_health
    params = ctx.params
    client = kube_api(cluster)
    deadline = time.monotonic() + params.settle_timeout
    while True:
        found = shard_targets(cluster)
        lines, behind = [], []
        for pod, (active, _) in sorted(found.items()):
            if not active:
                lines.append(f"{pod}: no targets")
                continue
            samples = promtext.parse(kube.proxy_get(client, cluster.namespace, pod, 9090,
                                                    "metrics"), agent_health.METRICS)
            started = promtext.maximum(samples, agent_health.START_TIME) or 0.0
            done, detail = agent_health.caught_up(samples, started,
                                                  cluster.threshold_remote_write_lag_seconds)
            lines.append(f"{pod}: {detail}")
            if not done:
                behind.append(pod)
        if not behind or time.monotonic() >= deadline:
            break
        time.sleep(5)
    return GateResult(not behind, "; ".join(lines))


class ScaleAgents(Runbook):
    name = "scale-agents"
    summary = ("Shard a workload cluster's scrape targets over N Prometheus Agents (hashmod),"
               " new shards Ready before old ones change, surplus drained before removal")
    mutating = True
    playbook = "scale-agents.yml"
    Params = ScaleAgentsParams
    changes = ("creates or removes StatefulSets prometheus-agent-shard-N and their ConfigMaps;"
               " rewrites the agent's ConfigMap (hashmod relabelling) and restarts its pods")
    rollback = ("automatic: a failed step restores ConfigMaps, restarts reconfigured shards and"
                " removes created ones; a failed post-gate scales back to the start count by"
                " the same procedure; claims of removed shards are kept")
    rollback_playbook = "scale-agents-rollback.yml"
    applies_to = AGENTS
    requires = ("kube_context",)
    pre_gates = (Gate("agent baseline", "Ready, delivering; Query's series per job recorded",
                      baseline),)
    post_gates = (Gate("targets partitioned", "every target active on exactly one shard",
                       partitioned),
                  Gate("shards delivering", "every shard with targets sends, lag under the"
                       " threshold", shards_delivering),
                  Gate("series per job", "Query's series per job as before", series_unchanged))

    def validate(self, ctx: RunContext[ScaleAgentsParams]) -> None:
        require_workload(self.name, ctx)
        params = ctx.params
        for cluster in ctx.clusters:
            plan = cluster.agent_shard_pod_annotations
            missing = [str(s) for s in range(1, params.shards) if plan and str(s) not in plan]
            if missing:
                raise PreconditionFailed(
                    f"{cluster.name}: wk_agent_shard_pod_annotations has no entry for shard(s)"
                    f" {', '.join(missing)} (it covers {', '.join(sorted(plan, key=int))}):"
                    " add them (e.g. the shard's address), or ask for fewer shards")
        managed = [c.name for c in ctx.clusters if c.agent_application]
        if managed and not params.allow_drift and not ctx.check_mode:
            raise PreconditionFailed(
                f"{', '.join(managed)}: the agent is an ArgoCD Application"
                " (wk_agent_application) and scale-agents does not commit to git (no GitOps"
                " mode yet): self-heal would revert shard 0's ConfigMap, and ArgoCD would not"
                " track the new shards. Commit the shards to the config repository (--check"
                " --diff prints the objects), or pause self-heal for the change and pass"
                " -e allow_drift=true")

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        """The shard count per cluster at the start, for the rollback."""
        from kubernetes import client

        start: dict[str, int] = {}
        for cluster in ctx.clusters:
            items: Any = client.AppsV1Api(kube_api(cluster)).list_namespaced_stateful_set(
                cluster.namespace).items
            names = [s.metadata.name for s in items]
            shard_of = platform.agent_shards.shard_of
            start[cluster.name] = sum(1 for n in names if shard_of(n, "prometheus-agent")
                                      is not None)
        return {**ctx.params.model_dump(mode="json"), "wk_start": start}
