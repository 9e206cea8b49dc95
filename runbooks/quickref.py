"""The quick reference as commands: `watchkeeper query PROMQL [--cluster C]`.

What operators type as `curl .../api/v1/query?query=...` against Thanos Query, with the cluster
resolved from the inventory and the answer as rows. Read-only; no runbook run, no journal.
"""

from __future__ import annotations

import json
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
