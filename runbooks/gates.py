"""Gates and preconditions shared by runbooks of more than one chapter.

A chapter package (runbooks.receivers, runbooks.agents, ...) never imports another chapter:
what two chapters share lives here. Each gate has the shape `model.Gate.check` expects:
`(ctx, cluster) -> GateResult`.

- require_workload / log_path_problem: the workload clusters an agent runbook may run on
  (agent-health, restart-agent, scale-agents, the diagnostics, the emergency runbooks);
- steady_state: scale-receivers' baseline (receivers Ready and on the ring, no write errors,
  agents' lag low), awaited;
- canary_after_change: a canary sample written after a change is in Query (scale-receivers,
  receiver-down);
- delivering: an agent is Ready and every remote-write queue's lag is under the threshold
  (restart-agent, remote-write-failing).
"""

from __future__ import annotations

import json
import string
import time
from typing import Any

from runbooks import platform
from runbooks.clients import agent_credentials, kube_api
from runbooks.errors import PreconditionFailed
from runbooks.inventory import ClusterConfig
from runbooks.model import GateResult, RunContext

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


def ring_and_pods(cluster: ClusterConfig) -> tuple[Any, list[Any], str]:
    kube = platform.kube
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
    promhttp = platform.promhttp
    promtext = platform.promtext
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


def steady_state(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
    """The steady-state baseline (_steady_state_once), awaited: a ring change makes receivers'
    forwards fail for a few seconds (the agents retry: nothing is lost), so the gate
    re-evaluates until the platform is steady or `settle_timeout` passes, then fails with the
    last evidence."""
    params = ctx.params
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
    kube = platform.kube
    hashring = platform.hashring
    promtext = platform.promtext
    health = platform.receiver_health
    sts, pods, text = ring_and_pods(cluster)
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
    rows, error = platform.promhttp.query(
        str(cluster.query_url), f"max(timestamp({cluster.canary_query}))", 10)
    if error:
        raise OSError(error)
    return float(rows[0]["value"]) if rows else 0.0


# RunContext[Any]: the gate of scale-receivers and receiver-down, whose Params each declare
# canary_timeout.
def canary_after_change(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
    """A canary sample newer than this gate's start reaches Query: writes flow end to end."""
    params = ctx.params
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


def delivering(ctx: RunContext, cluster: ClusterConfig) -> GateResult:
    """The agent is Ready and every remote-write queue's lag is under the threshold."""
    if cluster.role != "workload" or cluster.agent_url is None:
        return GateResult(True, "not a workload cluster with wk_agent_url")
    promhttp = platform.promhttp
    promtext = platform.promtext
    agent_health = platform.agent_health
    user, password = agent_credentials(cluster)
    ready = promhttp.get(cluster.agent_url + "/-/ready", 5.0, user, password)
    if not ready.ok:
        return GateResult(False, f"{cluster.agent_url}/-/ready: {ready.error}")
    body = promhttp.get(cluster.agent_url + "/metrics", 5.0, user, password)
    if not body.ok:
        return GateResult(False, f"{cluster.agent_url}/metrics: {body.error}")
    samples = promtext.parse(body.body, agent_health.METRICS)
    started = promtext.maximum(samples, agent_health.START_TIME) or 0.0
    done, detail = agent_health.caught_up(samples, started,
                                          cluster.threshold_remote_write_lag_seconds)
    return GateResult(done, f"Ready; {detail}")


def application_name(cluster: ClusterConfig, params: Any) -> str:
    """The ArgoCD Application a GitOps runbook works on: `-e application`, else the
    inventory's wk_argocd_application_template filled with the cluster and `-e component`."""
    if getattr(params, "application", ""):
        return str(params.application)
    if not getattr(params, "component", ""):
        raise PreconditionFailed("name the component (-e component=thanos-store) or the ArgoCD"
                                 " Application (-e application=...)")
    try:
        return cluster.argocd_application_template.format(cluster=cluster.name,
                                                          component=params.component)
    except (KeyError, IndexError, ValueError) as exc:
        raise PreconditionFailed(
            f"{cluster.name}: wk_argocd_application_template"
            f" {cluster.argocd_application_template!r} has an unknown field ({exc}); use"
            " {cluster} and {component}") from exc


def application_state(cluster: ClusterConfig, name: str) -> dict[str, Any]:
    """The Application's summary (sync, revision, health, ...), or a PreconditionFailed that
    says it is missing."""
    argocd_app = platform.argocd_app
    try:
        app = argocd_app.read(kube_api(cluster), cluster.argocd_namespace, name)
    except platform.kube.KubeFailure as exc:
        raise PreconditionFailed(f"{cluster.name}: {exc.message}; check -e component /"
                                 " -e application and wk_argocd_namespace") from exc
    state: dict[str, Any] = argocd_app.summary(app)
    return state


# RunContext[Any]: the gate of upgrade-chart and the gitops runbooks, whose Params each declare
# component and application.
def application_deployed(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
    """The component's ArgoCD Application is Synced and Healthy (its objects are what git
    says and its workloads are Ready); otherwise names what is not."""
    name = application_name(cluster, ctx.params)
    state = application_state(cluster, name)
    text = f"{name}: {state['sync']} at {state['revision'][:12]}, {state['health']}"
    if state["sync"] == "Synced" and state["health"] == "Healthy":
        return GateResult(True, text)
    argocd_app = platform.argocd_app
    client = kube_api(cluster)
    problems = argocd_app.unhealthy(client, argocd_app.read(client, cluster.argocd_namespace,
                                                            name))
    return GateResult(False, text + (": " + " | ".join(problems) if problems else ""))


def receive_applications(ctx: RunContext[Any]) -> dict[str, str]:
    """The receivers' ArgoCD Application per cluster (wk_argocd_application_template with the
    component wk_receive_statefulset): GitOps-mode hashring and scaling ask it to sync at
    their commit instead of waiting for its next poll of git."""
    found = {}
    for cluster in ctx.clusters:
        try:
            found[cluster.name] = cluster.argocd_application_template.format(
                cluster=cluster.name, component=cluster.receive_statefulset)
        except (KeyError, IndexError, ValueError):
            continue  # no usable template: the automated sync applies the commit
    return found


# RunContext[Any]: the gate of metrics-missing and upgrade-prometheus; their Params may declare
# lookback and stale_seconds (else an hour, and wk_threshold_remote_write_lag_seconds).
def jobs_fresh(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
    """Every expected job of the cluster has a fresh `up` sample in Query and is up."""
    if cluster.role != "workload" or cluster.query_url is None:
        return GateResult(True, "not a workload cluster with wk_query_url")
    params = ctx.params
    findings = platform.diagnose_probe.missing_metrics({
        "query_url": cluster.query_url, "cluster": cluster.cluster or cluster.name,
        "expected_jobs": list(cluster.expected_jobs),
        "lookback": float(getattr(params, "lookback", 3600.0)),
        "stale_seconds": float(getattr(params, "stale_seconds", 0.0)) or
        cluster.threshold_remote_write_lag_seconds,
        "timeout": 10.0})
    bad = [f for f in findings if f["status"] != "ok"]
    text = "; ".join(f"{f['name']}: {f['evidence']}" for f in (bad or findings))
    return GateResult(not bad, text)


def awaited(check: Any) -> Any:
    """A gate re-evaluated every 2 s until it passes or the run's `settle_timeout` passes
    (a restarted program needs a scrape and a send before it can pass), then its last
    evidence."""
    def gate(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
        deadline = time.monotonic() + float(getattr(ctx.params, "settle_timeout", 0.0))
        attempts = 0
        while True:
            attempts += 1
            result: GateResult = check(ctx, cluster)
            if result.ok or time.monotonic() >= deadline:
                if attempts > 1:
                    return GateResult(result.ok, f"{result.evidence} (after {attempts} tries)")
                return result
            time.sleep(2.0)

    gate.__doc__ = check.__doc__
    return gate
