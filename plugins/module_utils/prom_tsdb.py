# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""A Prometheus server's TSDB as the backup runbook sees it: is this a server that can snapshot
(not an agent, admin API on), where its TSDB lives, and the snapshot call itself.

The predicates are pure (they read the server's /api/v1/status/flags answer) and shared by the
module and the runbook's validate(), so both refuse for the same reasons with the same words.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import os
import urllib.error
import urllib.request

from ansible_collections.watchkeeper.platform.plugins.module_utils import promhttp
from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

#: What to back up instead of an agent: a Prometheus Agent keeps a WAL only, no TSDB
#: (https://prometheus.io/blog/2021/11/16/agent/); Thanos Receive's durable copy is the blocks
#: it uploads to the bucket.
AGENT_ADVICE = (
    "a Prometheus Agent keeps only a write-ahead log of samples it has not yet remote-written,"
    " and has no TSDB and no snapshot API (/api/v1/admin/tsdb/snapshot answers 'unavailable"
    " with Prometheus Agent'). Its data lives in Thanos Receive, whose durable copy is the"
    " blocks bucket (wk_s3_bucket_blocks): back that up with bucket versioning and a copy to"
    " the backup bucket (backup-bucket). backup-tsdb is for full Prometheus servers (e.g. HA"
    " replicas): point wk_prometheus_url at one")
ADMIN_ADVICE = (
    "start Prometheus with --web.enable-admin-api (prometheus-operator:"
    " spec.enableAdminAPI: true; Helm chart prometheus: server.extraFlags: [web.enable-admin-api])."
    " The admin API can delete series: expose it only where watchkeeper reaches it")


def is_agent(flags):
    """Is the server a Prometheus Agent? 2.x: --enable-feature=agent; 3.x: --agent."""
    features = [f.strip() for f in str(flags.get("enable-feature", "")).split(",")]
    return "agent" in features or str(flags.get("agent", "")).lower() == "true"


def admin_api_enabled(flags):
    return str(flags.get("web.enable-admin-api", "")).lower() == "true"


def server_problem(flags):
    """Why this server cannot be snapshot (a sentence starting with what it is), or ''."""
    if is_agent(flags):
        return "it runs in agent mode: " + AGENT_ADVICE
    if not admin_api_enabled(flags):
        return ("its admin API is off (web.enable-admin-api=false), so"
                " /api/v1/admin/tsdb/snapshot is refused: " + ADMIN_ADVICE)
    return ""


def tsdb_path(flags, override=""):
    """The TSDB directory as watchkeeper sees it: the inventory's wk_prometheus_tsdb_path, else
    the server's own --storage.tsdb.path (right when both run on one host)."""
    return override or str(flags.get("storage.tsdb.path", ""))


def path_problem(path):
    """Why `path` is not a usable TSDB directory from here, or ''."""
    if not path:
        return "no TSDB path: set wk_prometheus_tsdb_path"
    if not os.path.isdir(path):
        return ("%s is not a directory here: set wk_prometheus_tsdb_path to the Prometheus data"
                " directory as this host sees it (mount the volume into the backup job)" % path)
    if not os.path.isdir(os.path.join(path, "wal")):
        return ("%s has no wal/ directory, so it is not a Prometheus TSDB: fix"
                " wk_prometheus_tsdb_path" % path)
    if not os.access(path, os.R_OK | os.X_OK):
        return "%s is not readable by this user" % path
    return ""


class PrometheusFailure(ModuleFailure):
    """A failed Prometheus API call or snapshot."""


def get_json(url, path, timeout):
    """GET an API path; the `data` of a success answer. Raises PrometheusFailure."""
    fetched = promhttp.get(url.rstrip("/") + path, timeout=timeout)
    if not fetched.ok:
        raise PrometheusFailure("GET %s%s: %s" % (url, path, fetched.error),
                                "check wk_prometheus_url and that Prometheus is up")
    try:
        answer = json.loads(fetched.body)
    except ValueError as exc:
        raise PrometheusFailure("GET %s%s: not a Prometheus API answer" % (url, path),
                                "point wk_prometheus_url at the Prometheus HTTP port") from exc
    if answer.get("status") != "success":
        raise PrometheusFailure("GET %s%s: %s" % (url, path, answer.get("error")))
    return answer.get("data") or {}


def server_info(url, timeout=10.0):
    """(flags, buildinfo) of the server."""
    flags = get_json(url, "/api/v1/status/flags", timeout)
    try:
        build = get_json(url, "/api/v1/status/buildinfo", timeout)
    except PrometheusFailure:
        build = {}  # older servers; the version is informational
    return flags, build


def snapshot(url, skip_head=False, timeout=600.0):
    """POST /api/v1/admin/tsdb/snapshot; the snapshot's name (a directory under
    <tsdb>/snapshots/)."""
    endpoint = "%s/api/v1/admin/tsdb/snapshot?skip_head=%s" % (
        url.rstrip("/"), "true" if skip_head else "false")
    request = urllib.request.Request(endpoint, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")[:300]
        raise PrometheusFailure("POST %s: HTTP %d %s" % (endpoint, exc.code, body),
                                ADMIN_ADVICE if exc.code in (403, 503) else "") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PrometheusFailure("POST %s: %s" % (endpoint, promhttp.classify(exc)),
                                "check wk_prometheus_url") from exc
    name = (answer.get("data") or {}).get("name")
    if answer.get("status") != "success" or not name:
        raise PrometheusFailure("POST %s: %s" % (endpoint, answer))
    return name
