"""scale-receivers: Thanos Receive up or down by the safe procedure: a receiver joins the ring
only once Ready, leaves it before its pod stops, one member at a time.

1. validate: an observability cluster with its kube context, Query (for the post-gate) and,
   to scale down, the blocks bucket; `replicas` >= the replication factor;
2. pre-gate (baseline): every receiver Ready and at the StatefulSet's replicas; the ring's
   catch-all members are exactly the Ready receivers and every receiver has loaded it;
3. up: StatefulSet first, the new pods Ready, only then the ring takes them (proven);
   down: one member at a time from the highest ordinal, ring before StatefulSet (proven on
   every receiver, the leaving one included), its shutdown flush awaited and its final block
   verified in the bucket before its claim may be released (`release_pvcs`);
4. post-gate: a canary series written after the change is visible in Query;
5. rollback (any failure, a failed gate or an interrupt): replicas and ring back to the
   start, in the safe order for the direction.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import Field

from runbooks.clients import agent_credentials, kube_api
from runbooks.collection import module_utils
from runbooks.errors import PreconditionFailed
from runbooks.inventory import ClusterConfig
from runbooks.model import RECEIVERS, Gate, GateResult, Params, Runbook, RunContext


class ScaleParams(Params):
    replicas: int = Field(..., ge=1, le=64, description="target number of receivers")
    mode: Literal["", "direct", "gitops"] = Field(
        "", description="override the inventory's wk_hashring_mode: gitops commits the ring"
        " and the replicas to the config repository and waits for the sync")
    sync_timeout: float = Field(300.0, gt=0, description="gitops mode: seconds for the sync"
                                " to bring a committed change")
    ready_timeout: float = Field(300.0, gt=0, description="seconds for new pods to be Ready")
    converge_timeout: float = Field(180.0, gt=0, description="seconds for each ring proof")
    upload_timeout: float = Field(
        300.0, gt=0, description="seconds for a removed receiver's final block in the bucket")
    release_pvcs: bool = Field(
        False, description="delete a removed receiver's claim once its upload is verified")
    canary_timeout: float = Field(
        120.0, gt=0, description="seconds for a canary sample written after the change")
    settle_timeout: float = Field(
        120.0, ge=0, description="seconds the steady-state gates wait for the platform to"
        " settle (write errors right after a ring change are retried by the agents)")


def _ring_and_pods(cluster: ClusterConfig) -> tuple[Any, list[Any], str]:
    kube = module_utils("kube")
    client = kube_api(cluster)
    sts, pods = kube.statefulset_pods(client, cluster.namespace, cluster.receive_statefulset)
    cm = kube.core(client).read_namespaced_config_map(cluster.hashring_configmap,
                                                      cluster.namespace)
    return sts, pods, str((cm.data or {}).get("hashrings.json", ""))


def _endpoint(cluster: ClusterConfig, pod: Any) -> str:
    return cluster.receive_endpoint_template.format(
        pod=pod.metadata.name, ip=pod.status.pod_ip or "", service=cluster.receive_service,
        namespace=cluster.namespace, port=10901)


#: Seconds between the two metric samples the steady-state gate compares.
GATE_WINDOW = 5.0
#: An agent's remote-write lag: its newest sample appended minus the newest one sent.
NEWEST_SAMPLE = "prometheus_remote_storage_highest_timestamp_in_seconds"
NEWEST_SENT = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"


def _agent_lags(ctx: RunContext) -> dict[str, float | None]:
    """Remote-write lag of every workload cluster's agent in the inventory (None: no data),
    read from its /metrics with the inventory's wk_agent_auth, as the agent modules read it."""
    promhttp = module_utils("promhttp")
    promtext = module_utils("promtext")
    lags: dict[str, float | None] = {}
    for cluster in ctx.inventory.clusters:
        if cluster.role != "workload" or cluster.agent_url is None:
            continue
        user, password = agent_credentials(cluster)
        fetched = promhttp.get(f"{cluster.agent_url}/metrics", 5.0, user, password)
        if not fetched.ok:
            lags[cluster.name] = None
            continue
        try:
            samples = promtext.parse(fetched.body, (NEWEST_SAMPLE, NEWEST_SENT))
        except ValueError:
            lags[cluster.name] = None
            continue
        newest = promtext.maximum(samples, NEWEST_SAMPLE)
        sent = promtext.maximum(samples, NEWEST_SENT)
        lags[cluster.name] = None if newest is None or sent is None else max(0.0, newest - sent)
    return lags


def steady_state(ctx: RunContext, cluster: ClusterConfig) -> GateResult:
    """The steady-state baseline (_steady_state_once), awaited: a ring change makes receivers'
    forwards fail for a few seconds (the agents retry: nothing is lost), so the gate
    re-evaluates until the platform is steady or `settle_timeout` passes, then fails with the
    last evidence."""
    params: Any = ctx.params
    deadline = time.monotonic() + float(getattr(params, "settle_timeout", 0.0))
    attempts = 0
    while True:
        attempts += 1
        result = _steady_state_once(ctx, cluster)
        if result.ok or time.monotonic() >= deadline:
            if attempts > 1:
                return GateResult(result.ok, f"{result.evidence} (after {attempts} windows)")
            return result


def _steady_state_once(ctx: RunContext, cluster: ClusterConfig) -> GateResult:
    """Every receiver Ready, the ring = the Ready receivers and every receiver reporting its
    hash, no new hashring file errors and low forward / replication / 5xx ratios over a short
    window, every agent's remote-write lag under the threshold."""
    kube = module_utils("kube")
    hashring = module_utils("hashring")
    promtext = module_utils("promtext")
    health = module_utils("receiver_health")
    sts, pods, text = _ring_and_pods(cluster)
    ready = [p for p in pods if kube.is_ready(p)]
    problems = []
    if len(ready) != (sts.spec.replicas or 0):
        names = [p.metadata.name for p in pods if not kube.is_ready(p)]
        problems.append(f"{len(ready)}/{sts.spec.replicas} receivers Ready"
                        f" (not Ready: {', '.join(names) or 'missing pods'})")
    try:
        ring = json.loads(text)
        members = set(hashring.endpoint_address(e) for e in ring[-1]["endpoints"])
    except (ValueError, KeyError, IndexError, TypeError):
        members = set()
        problems.append("the hashring ConfigMap does not parse")
    expected = {_endpoint(cluster, p) for p in ready}
    if members != expected:
        problems.append(f"ring members {sorted(members)} != Ready receivers {sorted(expected)}")
    want = hashring.config_hash(text.encode())
    client = kube_api(cluster)

    def sample() -> dict[str, Any]:
        return {p.metadata.name: promtext.parse(kube.proxy_get(
            client, cluster.namespace, p.metadata.name, 10902, "metrics")) for p in ready}

    first = sample()
    time.sleep(GATE_WINDOW)
    second = sample()
    lagging, errors = [], []
    for name, samples in second.items():
        if promtext.total(samples, "thanos_receive_config_hash") != want:
            lagging.append(name)
        new_file_errors = health.counter_delta(first[name], samples,
                                               "thanos_receive_hashrings_file_errors_total")
        if new_file_errors:
            errors.append(f"{name}: {new_file_errors:.0f} new hashring file errors")
        for kind, (bad, total, ratio) in health.error_ratios(first[name], samples).items():
            if kind != "receive_4xx" and ratio is not None and \
                    ratio > cluster.threshold_failed_ratio:
                errors.append(f"{name}: {kind} errors {ratio:.1%} ({bad:.0f}/{total:.0f})")
    if lagging:
        problems.append(f"not on the current ring: {', '.join(lagging)}")
    problems += errors
    lags = _agent_lags(ctx)
    limit = cluster.threshold_remote_write_lag_seconds
    slow = {n: lag for n, lag in lags.items() if lag is None or lag > limit}
    if slow:
        problems.append(f"agents' remote-write lag over {limit:.0f} s: " + ", ".join(
            f"{n} {'unknown' if lag is None else f'{lag:.0f} s'}" for n, lag in slow.items()))
    if problems:
        return GateResult(False, "; ".join(problems))
    worst = max((lag for lag in lags.values() if lag is not None), default=0.0)
    return GateResult(True, f"{len(ready)} receivers Ready, all on the ring of {len(members)};"
                            f" no errors over {GATE_WINDOW:.0f} s; {len(lags)} agents, lag <="
                            f" {worst:.0f} s")


def _newest_canary(cluster: ClusterConfig) -> float:
    rows, error = module_utils("promhttp").query(
        str(cluster.query_url), f"max(timestamp({cluster.canary_query}))", 10)
    if error:
        raise OSError(error)
    return float(rows[0]["value"]) if rows else 0.0


def canary_after_change(ctx: RunContext, cluster: ClusterConfig) -> GateResult:
    """A canary sample newer than this gate's start reaches Query: writes flow end to end."""
    params: Any = ctx.params
    since = time.time()
    deadline = time.monotonic() + params.canary_timeout
    newest = 0.0
    while time.monotonic() < deadline:
        try:
            newest = _newest_canary(cluster)
        except OSError as exc:
            return GateResult(False, f"Query {cluster.query_url} unreachable: {exc}")
        if newest > since:
            return GateResult(True, f"{cluster.canary_query}: newest sample"
                                    f" {newest - since:.1f} s after the change")
        time.sleep(2)
    return GateResult(False, f"{cluster.canary_query}: no sample newer than the change within"
                             f" {params.canary_timeout:.0f} s (newest {since - newest:.0f} s"
                             " before it)")


class ScaleReceivers(Runbook):
    name = "scale-receivers"
    summary = ("Scale Thanos Receive up or down safely: Ready before joining, one member at a"
               " time, ring before StatefulSet, flush and upload verified, canary proven")
    mutating = True
    playbook = "scale-receivers.yml"
    rollback_playbook = "scale-receivers-rollback.yml"
    Params = ScaleParams
    changes = ("the receive StatefulSet's replicas and the hashring (ConfigMap or GitOps"
               " commit); with release_pvcs, removed receivers' claims")
    rollback = "replicas and ring back to the start, in the safe order for the direction"
    applies_to = RECEIVERS
    requires = ("kube_context", "query_url")
    pre_gates = (Gate("steady state", "receivers Ready and on the ring, no write errors,"
                      " agents' lag low", steady_state),)
    post_gates = (Gate("steady state", "the same, after the change", steady_state),
                  Gate("canary", "a canary sample written after the change is in Query",
                       canary_after_change))

    def validate(self, ctx: RunContext) -> None:
        params: Any = ctx.params
        for cluster in ctx.clusters:  # observability clusters only (applies_to)
            mode = params.mode or cluster.hashring_mode
            missing = [name for name, value in (
                ("wk_git_url", cluster.git_url),
                ("wk_hashring_git_path", cluster.hashring_git_path),
                ("wk_receive_replicas_git_path", cluster.receive_replicas_git_path))
                if not value]
            if mode == "gitops" and missing:
                raise PreconditionFailed(
                    f"{cluster.name}: gitops mode scales through the config repository (a"
                    " direct scale would be reverted by ArgoCD's self-heal, with a receiver"
                    f" still in the ring) and needs {', '.join(missing)}: set them, or run with"
                    " -e mode=direct where ArgoCD does not self-heal")
            if params.replicas < cluster.receive_replication_factor:
                raise PreconditionFailed(
                    f"{cluster.name}: replicas={params.replicas} < replication factor"
                    f" {cluster.receive_replication_factor}: every write would fail its quorum")
            sts, _, _ = _ring_and_pods(cluster)
            if params.replicas < (sts.spec.replicas or 0) and not cluster.s3_bucket_blocks:
                raise PreconditionFailed(
                    f"{cluster.name}: scaling down verifies each removed receiver's final block"
                    " in the bucket: set wk_s3_bucket_blocks (and the S3 endpoint/keys)")

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        """The start (replicas and ring file) per cluster, for the rollback."""
        params: Any = ctx.params
        start: dict[str, Any] = {}
        for cluster in ctx.clusters:
            sts, _, text = _ring_and_pods(cluster)
            start[cluster.name] = {"replicas": int(sts.spec.replicas or 0), "ring": text}
        return {**params.model_dump(mode="json"), "wk_start": start}
