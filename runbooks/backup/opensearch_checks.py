"""Preconditions shared by the OpenSearch runbooks: checked in `validate()`, before anything
changes, each failure naming the inventory field or parameter to fix.

The client comes from runbooks.clients (the one place SDK clients are built).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from runbooks.clients import opensearch_client
from runbooks.errors import PreconditionFailed
from runbooks.inventory import ClusterConfig

#: Per-request timeout of precondition reads: a wrong address must not stall validation.
PROBE_TIMEOUT = 10

#: The index and snapshot name rules OpenSearch enforces (besides length).
_NAME = re.compile(r"^[a-z0-9][^\\/*?\"<>| ,#:A-Z]*$")


def name_problem(value: str, field: str) -> str | None:
    """Why `value` cannot be an OpenSearch repository / snapshot / index name, or None."""
    if not _NAME.match(value):
        return (f"{field} {value!r}: lower case, starting with a letter or digit, without"
                " \\ / * ? \" < > | , # : or spaces")
    return None


def pattern_problem(value: str, field: str) -> str | None:
    """Why `value` is not a safe index pattern for a runbook, or None: one pattern, a literal
    prefix (never every index), no system or hidden indices, no exclusions."""
    if value in ("*", "_all") or not value or value[0] in "*?":
        return (f"{field} {value!r} would match every index; give a pattern with a literal"
                " prefix, e.g. logs-*")
    if value[0] in ".-_+":
        return f"{field} {value!r} starts with {value[0]!r} (system, hidden or excluded indices)"
    if not _NAME.match(value.replace("*", "x")):
        return (f"{field} {value!r}: one lower-case pattern such as logs-* (for several, a"
                " list: -e '{field}=[logs-*, audit-*]')")
    return None


def _describe(exc: Exception) -> str:
    from opensearchpy import exceptions as osx

    if isinstance(exc, osx.ConnectionTimeout):
        return "timed out"
    if isinstance(exc, osx.ConnectionError):
        text = str(getattr(exc, "info", "") or exc)
        if "refused" in text:
            return "connection refused"
        if "resolution" in text or "not known" in text:
            return "DNS lookup failed"
        return f"connection failed ({text[:160]})"
    if isinstance(exc, osx.TransportError):
        return f"HTTP {exc.status_code} {exc.error}"
    return f"{type(exc).__name__}: {exc}"


def connect(cluster: ClusterConfig, inventory: str) -> Any:
    """A client for the cluster's OpenSearch, after proving that wk_opensearch_url answers as
    OpenSearch (and that the credentials work). Raises PreconditionFailed naming the fix."""
    from opensearchpy import exceptions as osx

    url = cluster.opensearch_url
    if url is None:
        raise PreconditionFailed(f"{cluster.name}: wk_opensearch_url is not set: add it to the"
                                 f" cluster's host_vars in {inventory}")
    client = opensearch_client(cluster)
    try:
        info = client.info(request_timeout=PROBE_TIMEOUT)
    except osx.AuthenticationException as exc:
        raise PreconditionFailed(
            f"{cluster.name}: OpenSearch at wk_opensearch_url {url} refused the credentials"
            f" (HTTP 401): fix wk_opensearch_auth in {inventory}") from exc
    except osx.OpenSearchException as exc:
        raise PreconditionFailed(
            f"{cluster.name}: cannot use OpenSearch at wk_opensearch_url {url}:"
            f" {_describe(exc)}. Fix wk_opensearch_url in {inventory} (scheme, host, port of"
            " the OpenSearch HTTP API, usually :9200) or start OpenSearch; nothing was"
            " changed") from exc
    distribution = (info.get("version") or {}).get("distribution") if isinstance(info, dict) \
        else None
    if distribution != "opensearch":
        raise PreconditionFailed(
            f"{cluster.name}: wk_opensearch_url {url} does not answer as OpenSearch (GET /"
            f" gave distribution {distribution!r}): point it at the OpenSearch HTTP API in"
            f" {inventory}")
    return client


def require_path_repo(client: Any, cluster: ClusterConfig) -> None:
    """An `fs` repository needs path.repo on every node."""
    nodes = client.nodes.info(metric="settings", request_timeout=PROBE_TIMEOUT)["nodes"]
    missing = sorted(n.get("name", node_id) for node_id, n in nodes.items()
                     if not ((n.get("settings") or {}).get("path") or {}).get("repo"))
    if missing:
        raise PreconditionFailed(
            f"{cluster.name}: OpenSearch node(s) {', '.join(missing)} have no path.repo, so an"
            " fs snapshot repository cannot be registered: add `path.repo: [/path/to/snapshots]`"
            " to opensearch.yml on every node (a shared filesystem) and restart them")


def require_repository_compatible(client: Any, cluster: ClusterConfig, repository: str,
                                  location: str) -> None:
    """An existing repository of that name must be the fs repository at `location`."""
    found = client.snapshot.get_repository(request_timeout=PROBE_TIMEOUT).get(repository)
    settings = (found or {}).get("settings") or {}
    if found and (found.get("type") != "fs" or settings.get("location") != location):
        raise PreconditionFailed(
            f"{cluster.name}: snapshot repository {repository!r} exists as type"
            f" {found.get('type')} at {settings.get('location')!r}, not fs at {location!r}:"
            f" pass -e repository_location={settings.get('location')} to use it, or another"
            " -e repository name")


def require_repository(client: Any, cluster: ClusterConfig, repository: str) -> None:
    known = client.snapshot.get_repository(request_timeout=PROBE_TIMEOUT)
    if repository not in known:
        raise PreconditionFailed(
            f"{cluster.name}: snapshot repository {repository!r} does not exist"
            f" (known: {', '.join(sorted(known)) or 'none'}): run backup-opensearch first, or"
            " pass the repository that holds the snapshot with -e repository=NAME")


def require_indices(client: Any, cluster: ClusterConfig, patterns: Sequence[str],
                    allow_red: bool) -> list[str]:
    """The open indices the patterns match; none is a failure, and so is a red one (its
    snapshot would be refused, or PARTIAL) unless `allow_red`."""
    rows = client.cat.indices(index=",".join(patterns), format="json", h="index,health",
                              expand_wildcards="open", request_timeout=PROBE_TIMEOUT)
    names = sorted(r["index"] for r in rows)
    if not names:
        raise PreconditionFailed(
            f"{cluster.name}: index patterns {', '.join(patterns)} match no open index: fix"
            " -e indices (e.g. -e indices=logs-*); an empty snapshot backs up nothing")
    red = sorted(r["index"] for r in rows if r.get("health") == "red")
    if red and not allow_red:
        raise PreconditionFailed(
            f"{cluster.name}: index(es) {', '.join(red)} are red (a primary shard is"
            " unassigned), so OpenSearch would refuse the snapshot: fix them first"
            " (GET _cluster/allocation/explain), narrow -e indices, or accept a PARTIAL"
            " snapshot with -e partial=true (the run still fails)")
    return names
