"""scale-prometheus: run a full Prometheus server as N HA replicas (or back to one).

Agents are sharded (scale-agents); full Prometheus servers are replicated: N identical
servers scrape the same targets, and Thanos Query merges their copies into one. What makes
that safe (plugins/module_utils/prometheus_ha.py):
- each replica's external label `replica` (wk_prometheus_replica_label) is its own pod name,
  expanded per pod (downward API env + `--enable-feature=expand-external-labels`): two
  replicas with one value write the same series twice;
- Query deduplicates on that label (`--query.replica-label`): without it every series of the
  set is counted once per replica, and every sum, rate and alert doubles.

The procedure:
1. validate: the clusters name the StatefulSet (wk_prometheus_statefulset) and a kube context;
   1 <= replicas <= 10;
2. pre-gate: every replica Ready, each reporting its own name as the replica label (before
   going above one replica); each delivering (fresh series in Query); Query's deduplicated
   answer carries no replica label (it deduplicates on it); the deduplicated series per job
   recorded as the baseline;
3. up: the StatefulSet scaled; each new replica Ready, with its own label, scraping what
   replica 0 scrapes. down: each surplus replica's remote-write queue drained (what it
   scraped is in the receivers), then the StatefulSet scaled down; claims kept;
4. post-gate: Query sees exactly the wanted replicas (undeduplicated, by replica label) and
   the deduplicated series per job equal the baseline (nothing lost, nothing doubled);
5. rollback: a failed step scales back inside the module; a failed post-gate runs
   scale-prometheus-rollback.yml (back to the start count by the same procedure).
Check mode prints the plan and sends the scale as a server-side dry run.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks import platform
from runbooks.clients import kube_api
from runbooks.errors import PreconditionFailed
from runbooks.inventory import READY_TIMEOUT, ClusterConfig
from runbooks.model import AppliesTo, Gate, GateResult, Params, Runbook, RunContext

MAX_REPLICAS = 10
#: A replica delivers when Query has a sample of it newer than this (seconds).
FRESH = 30


class ScalePrometheusParams(Params):
    replicas: int = Field(..., ge=1, le=MAX_REPLICAS, description="HA replicas of the"
                          " Prometheus server (identical servers Query deduplicates)")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, description="seconds for a new replica to be"
                                 " Ready, labelled and scraping")
    drain_timeout: float = Field(300.0, gt=0, description="seconds for a surplus replica's"
                                 " remote-write queue to drain before it is removed")
    settle_timeout: float = Field(120.0, ge=0, description="seconds the post-gate waits for"
                                  " Query to see the replicas and the baseline series")


_BASELINE: dict[tuple[str, str], dict[str, int]] = {}


def selector(cluster: ClusterConfig) -> str:
    """The HA set's `up` series in Query: its replica label holds its pods' names."""
    label = cluster.cluster or cluster.name
    return (f'up{{cluster="{label}",{cluster.prometheus_replica_label}'
            f'=~"{cluster.prometheus_statefulset}-[0-9]+"}}')


def query(cluster: ClusterConfig, promql: str, dedup: bool) -> list[dict[str, Any]]:
    rows, error = platform.promhttp.query(str(cluster.query_url), promql, 10,
                                          dedup=dedup)
    if error:
        raise PreconditionFailed(f"{cluster.name}: Query: {error}")
    return list(rows)


def per_job(cluster: ClusterConfig) -> dict[str, int]:
    """Deduplicated `up` series per job of the HA set: one per target, whatever the replicas."""
    rows = query(cluster, f"count by (job) ({selector(cluster)})", dedup=True)
    return {str(r["metric"].get("job")): int(r["value"]) for r in rows}


def loaded_external_labels(cluster: ClusterConfig, pod: str) -> dict[str, str]:
    """The external labels of the configuration the pod's Prometheus loaded."""
    body = platform.kube.proxy_get(kube_api(cluster), cluster.namespace, pod, 9090,
                                   "api/v1/status/config")
    return dict(platform.prometheus_ha.loaded_external_labels(body))


def ha_baseline(ctx: RunContext[ScalePrometheusParams], cluster: ClusterConfig) -> GateResult:
    """Every replica Ready; Query deduplicates on the replica label; series per job recorded."""
    kube = platform.kube
    ha = platform.prometheus_ha
    _, pods = kube.statefulset_pods(kube_api(cluster), cluster.namespace,
                                    cluster.prometheus_statefulset)
    unready = [p.metadata.name for p in pods if not kube.is_ready(p)]
    if not pods or unready:
        return GateResult(False, f"{', '.join(unready) or 'no pods'}: make every replica of"
                          f" {cluster.prometheus_statefulset} Ready first")
    params = ctx.params
    if params.replicas > 1:
        problems = ha.replica_label_problems(
            {p.metadata.name: loaded_external_labels(cluster, p.metadata.name) for p in pods},
            cluster.prometheus_replica_label)
        if problems:
            return GateResult(False, "not an HA set Query can deduplicate: "
                              + "; ".join(problems))
    if cluster.query_url is None:
        return GateResult(False, "no wk_query_url: the gates prove the HA set through Query")
    rows = query(cluster, selector(cluster), dedup=True)
    problem = ha.dedup_problem(rows, cluster.prometheus_replica_label)
    if problem:
        return GateResult(False, problem)
    fresh = fresh_replicas(cluster)
    stale = [p.metadata.name for p in pods if p.metadata.name not in fresh]
    if stale:
        return GateResult(False, f"{', '.join(stale)}: no series newer than {FRESH} s in Query;"
                          " the HA set is not delivering (check its remote write: agent-health"
                          " reads any Prometheus's queues, receiver-health the receivers)")
    jobs = per_job(cluster)
    if not jobs:
        return GateResult(False, f"Query has no series of {selector(cluster)}: is the server"
                          " delivering (remote write or sidecar), and is its replica label"
                          f" {cluster.prometheus_replica_label} its pod name?")
    _BASELINE[(ctx.run_id, cluster.name)] = jobs
    return GateResult(True, f"{len(pods)} replica(s) Ready; Query deduplicates on"
                      f" {cluster.prometheus_replica_label}; baseline series per job {jobs}")


def fresh_replicas(cluster: ClusterConfig) -> dict[str, int]:
    """{replica: targets} with a sample newer than FRESH seconds in Query, undeduplicated (one
    per target and replica: the receivers' copies are separate series too, grouped away)."""
    label = cluster.prometheus_replica_label
    rows = query(cluster, f"count by ({label}) (group by ({label}, job, instance)"
                 f" (timestamp({selector(cluster)}) > time() - {FRESH}))", dedup=False)
    return {str(r["metric"].get(label)): int(r["value"]) for r in rows}


def replicas_seen(ctx: RunContext[ScalePrometheusParams], cluster: ClusterConfig) -> GateResult:
    """Query has fresh series from exactly the wanted replicas, each for every job (waits up
    to settle_timeout: a new replica's first samples need a scrape and a send; a removed
    one's last samples stay fresh for FRESH seconds)."""
    params = ctx.params
    want = {f"{cluster.prometheus_statefulset}-{i}" for i in range(params.replicas)}
    jobs = len(_BASELINE.get((ctx.run_id, cluster.name), {})) or 1

    def check() -> tuple[bool, tuple[dict[str, int], list[str], list[str]]]:
        seen = fresh_replicas(cluster)
        missing = sorted(r for r in want if seen.get(r, 0) < jobs)
        extra = sorted(set(seen) - want)
        return not missing and not extra, (seen, missing, extra)

    ok, (seen, missing, extra), _ = platform.kube.wait_for(
        "replicas in Query", check, params.settle_timeout, every=5.0)
    if not ok:
        return GateResult(False, f"fresh series in Query from {seen or 'no replica'};"
                          f" missing {', '.join(missing) or 'none'}, unexpected"
                          f" {', '.join(extra) or 'none'}")
    return GateResult(True, f"fresh series in Query from each replica: {seen}")


def deduplicated(ctx: RunContext[ScalePrometheusParams], cluster: ClusterConfig) -> GateResult:
    """Query's deduplicated series per job equal the baseline (waits up to settle_timeout)."""
    before = _BASELINE.get((ctx.run_id, cluster.name))
    if before is None:
        return GateResult(True, "no baseline recorded")
    params = ctx.params

    def check() -> tuple[bool, dict[str, int]]:
        after = per_job(cluster)
        return after == before, after

    ok, after, _ = platform.kube.wait_for("deduplicated series", check,
                                          params.settle_timeout, every=5.0)
    if not ok:
        return GateResult(False, f"deduplicated series per job {after} != before {before}")
    return GateResult(True, f"deduplicated series per job as before: {after}")


class ScalePrometheus(Runbook):
    name = "scale-prometheus"
    summary = ("Run a full Prometheus server as N HA replicas that Thanos Query deduplicates:"
               " new replicas labelled and scraping before the gate, surplus drained first")
    mutating = True
    playbook = "scale-prometheus.yml"
    Params = ScalePrometheusParams
    changes = "scales the Prometheus server StatefulSet (wk_prometheus_statefulset)"
    rollback = ("automatic: a failed step scales back to the start count; a failed post-gate"
                " does the same by the same procedure, so a surplus replica goes only once its"
                " queue has drained (else it stays and the rollback fails, nothing dropped);"
                " claims of removed replicas are kept")
    rollback_playbook = "scale-prometheus-rollback.yml"
    applies_to = AppliesTo("Prometheus HA set", fields=("prometheus_statefulset",))
    requires = ("kube_context",)
    pre_gates = (Gate("HA baseline", "replicas Ready; Query deduplicates on the replica label;"
                      " series per job recorded", ha_baseline),)
    post_gates = (Gate("replicas in Query", "fresh series from exactly the wanted replicas",
                       replicas_seen),
                  Gate("deduplicated series", "Query's deduplicated series per job as"
                       " before", deduplicated))

    def validate(self, ctx: RunContext) -> None:
        missing = [c.name for c in ctx.clusters if c.query_url is None]
        if missing:
            raise PreconditionFailed(
                f"{', '.join(missing)}: no wk_query_url; scale-prometheus proves the HA set"
                " through Thanos Query (deduplication, every replica's series)")

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        """The replica count per cluster at the start, for the rollback."""
        from kubernetes import client

        start: dict[str, int] = {}
        for cluster in ctx.clusters:
            sts: Any = client.AppsV1Api(kube_api(cluster)).read_namespaced_stateful_set(
                cluster.prometheus_statefulset, cluster.namespace)
            start[cluster.name] = int(sts.spec.replicas or 0)
        return {**ctx.params.model_dump(mode="json"), "wk_start": start}
