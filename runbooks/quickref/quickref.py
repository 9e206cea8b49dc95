"""The quick reference as commands: `watchkeeper query PROMQL [--cluster C]` and
`watchkeeper logs COMPONENT [--cluster C]`.

`query` is what operators type as `curl .../api/v1/query?query=...` against Thanos Query, with
the cluster resolved from the inventory and the answer as rows. `logs` is `kubectl logs` of
every pod of a component, through the API server's pods/log, in the cluster's kube context and
namespace. Read-only; no runbook run, no journal.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from runbooks.errors import UsageError, WatchkeeperError
from runbooks.inventory import ClusterConfig, Inventory


class QueryFailed(WatchkeeperError):
    """Query answered with an error or could not be reached (exit 1)."""


@dataclass(frozen=True)
class QueryResult:
    """An instant query's answer: one row per series (labels and value)."""

    cluster: str
    url: str
    query: str
    result_type: str
    rows: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "url": self.url, "query": self.query,
                "result_type": self.result_type, "rows": list(self.rows),
                "warnings": list(self.warnings)}

    def columns(self) -> list[str]:
        """Label names across the rows (`__name__` first), then `value`."""
        names = sorted({k for row in self.rows for k in row["labels"]})
        if "__name__" in names:
            names.remove("__name__")
            names.insert(0, "__name__")
        return [*names, "value"]


def query_cluster(inventory: Inventory, cluster_name: str | None) -> ClusterConfig:
    """The named cluster, or the first with wk_query_url; it must declare wk_query_url."""
    if cluster_name:
        cluster = inventory.cluster(cluster_name)
        if cluster.query_url is None:
            raise UsageError(f"cluster {cluster.name} declares no wk_query_url; pick one that"
                             " does with --cluster")
        return cluster
    for cluster in inventory.clusters:
        if cluster.query_url is not None:
            return cluster
    raise UsageError(f"no cluster in {inventory.path} declares wk_query_url")


def parse_answer(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(result type, rows, warnings) of a Prometheus API v1 query answer."""
    if body.get("status") != "success":
        raise QueryFailed(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body.get("data") or {}
    kind = str(data.get("resultType", ""))
    result = data.get("result")
    rows: list[dict[str, Any]] = []
    if kind == "vector":
        for item in result or []:
            rows.append({"labels": item.get("metric", {}), "timestamp": item["value"][0],
                         "value": item["value"][1]})
    elif kind in ("scalar", "string") and isinstance(result, list):
        rows.append({"labels": {}, "timestamp": result[0], "value": result[1]})
    elif kind == "matrix":
        for item in result or []:
            last = item["values"][-1] if item.get("values") else [None, None]
            rows.append({"labels": item.get("metric", {}), "timestamp": last[0],
                         "value": last[1], "samples": len(item.get("values", []))})
    return kind, rows, [str(w) for w in body.get("warnings", [])]


def instant_query(cluster: ClusterConfig, promql: str, timeout: float = 30.0) -> QueryResult:
    """Run `promql` as an instant query against the cluster's wk_query_url."""
    base = str(cluster.query_url).rstrip("/")
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # Prometheus answers a bad query with 400 and a JSON error body.
        try:
            body = json.loads(exc.read())
        except ValueError:
            raise QueryFailed(f"{base}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryFailed(f"{base}: {reason} (is Thanos Query up? check wk_query_url of"
                          f" {cluster.name})") from exc
    kind, rows, warnings = parse_answer(body)
    return QueryResult(cluster.name, base, promql, kind, tuple(rows), tuple(warnings))


# ---------------------------------------------------------------- logs
# `watchkeeper logs COMPONENT`: what operators type as `kubectl logs -l ... --prefix`, with the
# cluster's kube context and namespace from the inventory. Read-only; no journal.
ALIASES = {"receive": "thanos-receive", "receiver": "thanos-receive",
           "query": "thanos-query", "store": "thanos-store", "compact": "thanos-compact",
           "agent": "prometheus-agent", "prometheus": "prometheus",
           "am": "alertmanager", "alertmanager": "alertmanager", "grafana": "grafana"}
NAME_LABEL = "app.kubernetes.io/name"


class LogsFailed(WatchkeeperError):
    """The API server refused or could not serve a pod's log (exit 1)."""


def kube_cluster(inventory: Inventory, cluster_name: str | None) -> ClusterConfig:
    """The named cluster, or the first with a kube context; it must declare wk_kube_context."""
    if cluster_name:
        cluster = inventory.cluster(cluster_name)
        if not cluster.kube_context:
            raise UsageError(f"cluster {cluster.name} declares no wk_kube_context: set it in"
                             f" {inventory.path}, or pick a cluster that has one with --cluster")
        return cluster
    for cluster in inventory.clusters:
        if cluster.kube_context:
            return cluster
    raise UsageError(f"no cluster in {inventory.path} declares wk_kube_context")


def _workload(pod: Any) -> str:
    """The name of the pod's StatefulSet / Deployment (from its owner), else its name label."""
    for owner in pod.metadata.owner_references or []:
        if owner.kind == "StatefulSet":
            return str(owner.name)
        if owner.kind == "ReplicaSet":  # a Deployment's: NAME-<template hash>
            return str(owner.name).rsplit("-", 1)[0]
    return str((pod.metadata.labels or {}).get(NAME_LABEL, pod.metadata.name))


def component_pods(pods: list[Any], component: str) -> list[Any]:
    """The pods of `component`: a workload name, an app.kubernetes.io/name value, an alias
    (receive, agent, query, ...) or one pod's name. Raises UsageError listing what exists."""
    wanted = {component, ALIASES.get(component, component)}
    found = [p for p in pods if p.metadata.name in wanted]
    if not found:
        found = [p for p in pods if _workload(p) in wanted
                 or (p.metadata.labels or {}).get(NAME_LABEL) in wanted]
    if not found:
        names = sorted({_workload(p) for p in pods})
        raise UsageError(f"no pod of component {component!r}; the namespace has:"
                         f" {', '.join(names) or 'no pods'} (aliases: "
                         f"{', '.join(sorted(ALIASES))})")
    return sorted(found, key=lambda p: str(p.metadata.name))


def parse_since(text: str) -> int:
    """'90s', '10m', '2h', '1d' or plain seconds, as seconds (UsageError naming --since)."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--since {text!r}: give a duration such as 90s, 10m, 2h or 1d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@dataclass(frozen=True)
class PodLog:
    pod: str
    lines: tuple[str, ...]
    error: str = ""


def read_logs(cluster: ClusterConfig, component: str, *, pod: str | None = None,
              tail: int | None = None, since_seconds: int | None = None,
              grep: str | None = None, previous: bool = False,
              timeout: float = 30.0) -> list[PodLog]:
    """Each pod's log lines of the component (through the API server's pods/log)."""
    from kubernetes import client as k

    from runbooks.clients import kube_api

    pattern = _grep_pattern(grep)
    api = k.CoreV1Api(kube_api(cluster))
    namespace = cluster.namespace
    try:
        pods = api.list_namespaced_pod(namespace, _request_timeout=timeout).items
    except Exception as exc:  # ApiException, connection refused
        raise LogsFailed(_api_reason(exc, f"list pods in {namespace}", cluster)) from exc
    chosen = component_pods(pods, component)
    if pod:
        chosen = [p for p in chosen if p.metadata.name == pod]
        if not chosen:
            raise UsageError(f"--pod {pod!r} is not a pod of {component} in {namespace}")
    results = []
    for item in chosen:
        name = str(item.metadata.name)
        kwargs: dict[str, Any] = {"_request_timeout": timeout, "previous": previous}
        if tail is not None:
            kwargs["tail_lines"] = tail
        if since_seconds is not None:
            kwargs["since_seconds"] = since_seconds
        try:
            text = api.read_namespaced_pod_log(name, namespace, **kwargs)
        except Exception as exc:
            results.append(PodLog(name, (), _api_reason(exc, f"read the log of {name}",
                                                        cluster)))
            continue
        lines = [line for line in str(text or "").splitlines()
                 if pattern is None or pattern.search(line)]
        results.append(PodLog(name, tuple(lines)))
    return results


def _grep_pattern(grep: str | None) -> re.Pattern[str] | None:
    if not grep:
        return None
    try:
        return re.compile(grep)
    except re.error as exc:
        raise UsageError(f"--grep {grep!r} is not a regular expression: {exc}") from exc


def _api_reason(exc: Exception, what: str, cluster: ClusterConfig) -> str:
    status = getattr(exc, "status", None)
    if status == 403:
        return (f"{what}: forbidden: the identity of context {cluster.kube_context} needs"
                " `get` on pods/log (and `list` on pods) in its Role")
    if status is None:
        return (f"{what}: API server of context {cluster.kube_context} unreachable:"
                f" {str(exc).splitlines()[0][:200]}")
    body = str(getattr(exc, "body", "") or "").strip()
    with contextlib.suppress(ValueError, AttributeError):
        body = str(json.loads(body).get("message", body))
    return f"{what}: HTTP {status} {getattr(exc, 'reason', '')}: {body[:300]}".rstrip(": ")


def follow_logs(cluster: ClusterConfig, pods: list[str], grep: str | None, emit: Any) -> None:
    """Stream new lines of each pod (one thread per pod) until interrupted. When `emit`
    raises BrokenPipeError (the reader of the output went away: `... -f | grep -m1 x`),
    every stream stops and BrokenPipeError is raised here, in the caller's thread."""
    import errno
    import threading

    from kubernetes import client as k

    from runbooks.clients import kube_api

    pattern = _grep_pattern(grep)
    api = k.CoreV1Api(kube_api(cluster))
    reader_gone = threading.Event()

    def stream(name: str) -> None:
        # New lines only: what was there is printed by read_logs before.
        response: Any = api.read_namespaced_pod_log(name, cluster.namespace, follow=True,
                                                    tail_lines=0, _preload_content=False)
        try:
            for raw in response.stream():
                for line in raw.decode("utf-8", "replace").splitlines():
                    if pattern is None or pattern.search(line):
                        emit(name, line)
        except BrokenPipeError:
            reader_gone.set()

    threads = [threading.Thread(target=stream, args=(n,), daemon=True) for n in pods]
    for thread in threads:
        thread.start()
    # A pod that logs nothing more would hold a join() forever: wait for the reader as well.
    while any(thread.is_alive() for thread in threads):
        if reader_gone.wait(0.5):
            raise BrokenPipeError(errno.EPIPE, "the reader of the log lines went away")
    if reader_gone.is_set():
        raise BrokenPipeError(errno.EPIPE, "the reader of the log lines went away")
