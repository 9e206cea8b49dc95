# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""The reads behind the operations checklists: one probe per checklist item, each returning
checks (judged by the pure functions of checklist.py). The body of the `checklist` module and
action plugin, which run the items of one cluster concurrently.

A probe never raises: an error becomes a check that says what was tried and what failed.
"""

from __future__ import absolute_import, annotations, division, print_function

import contextlib
import hashlib
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    checklist as cl,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils import promhttp, promtext
from ansible_collections.watchkeeper.platform.plugins.module_utils.log_indices import (
    select_old_indices,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    evaluate_agent,
    evaluate_receiver,
)

ARGUMENT_SPEC = dict(
    items=dict(type="list", elements="str", required=True),
    cluster=dict(type="str", required=True),
    host=dict(type="str"),
    role=dict(type="str", default="workload"),
    kubeconfig=dict(type="str"),
    context=dict(type="str"),
    namespace=dict(type="str", default="monitoring"),
    argocd_namespace=dict(type="str", default="argocd"),
    git_url=dict(type="str"),
    agent_url=dict(type="str"),
    agent_username=dict(type="str"),
    agent_password=dict(type="str", no_log=True),
    first=dict(type="dict"),
    second=dict(type="dict"),
    grafana_url=dict(type="str"),
    grafana_username=dict(type="str"),
    grafana_password=dict(type="str", no_log=True),
    data_volume_paths=dict(type="list", elements="str", default=[]),
    query_url=dict(type="str"),
    alertmanager_url=dict(type="str"),
    prometheus_url=dict(type="str"),
    prometheus_tsdb_path=dict(type="str"),
    opensearch_url=dict(type="str"),
    opensearch_username=dict(type="str"),
    opensearch_password=dict(type="str", no_log=True),
    log_index_pattern=dict(type="str", default="logs-*"),
    s3_endpoint=dict(type="str"),
    s3_region=dict(type="str", default="us-east-1"),
    s3_access_key=dict(type="str", no_log=True),
    s3_secret_key=dict(type="str", no_log=True),
    buckets=dict(type="list", elements="str", default=[]),
    state_dir=dict(type="str"),
    textfile_dir=dict(type="str"),
    versions=dict(type="dict", default={}),
    versions_latest=dict(type="dict", default={}),
    versions_latest_file=dict(type="str"),
    resource_window=dict(type="str", default="1d"),
    thresholds=dict(type="dict", default={}),
    timeout=dict(type="float", default=10.0),
    verdict=dict(type="bool", default=False),
    earlier=dict(type="list", elements="dict", default=[]),
    strict=dict(type="bool", default=False),
)

#: How many items of one cluster run at once (each is a few HTTP calls).
PARALLEL_ITEMS = 6
#: A growth percentage is judged against a record at least this old (shorter is noise).
GROWTH_BASELINE_SECONDS = 86400.0
_HISTORY = 30


class Kube(object):
    """One kubernetes client per checklist run, built on first use (most items need none)."""

    def __init__(self, params):
        self.params = params
        self._client = None

    def client(self):
        from ansible_collections.watchkeeper.platform.plugins.module_utils import kube

        if self._client is None:
            self._client = kube.connect(self.params)
        return self._client


def verdict_over(params, checks):
    """(failed, message) over this task's checks and the earlier checklist tasks' results
    (params["earlier"]): the checklist's last task fails the cluster once, naming every
    failed check, after all items ran."""
    every = []
    for result in params.get("earlier") or []:
        if result.get("failed") and not result.get("checks"):
            every.append(cl.check("checklist task", "fail", str(result.get("msg", "failed"))))
        every.extend(c for c in result.get("checks") or [] if isinstance(c, dict))
    return cl.verdict(every + list(checks), params.get("strict"))


def run_items(params, now=None):
    """Every item named in params["items"], concurrently; checks in item order."""
    now = time.time() if now is None else now
    kube = Kube(params)
    items = list(params["items"])
    unknown = [i for i in items if i not in ITEMS]
    if unknown:
        raise ValueError("unknown checklist item(s): %s (known: %s)" % (
            ", ".join(unknown), ", ".join(sorted(ITEMS))))

    _preload(items)

    def one(item):
        try:
            return ITEMS[item](params, kube, now)
        except Exception as exc:  # a probe that cannot decide is a failed check
            return [cl.check(item, "fail", "could not run: %s: %s" % (type(exc).__name__, exc),
                             "read the error; the item's endpoint or credentials may be wrong")]

    with ThreadPoolExecutor(max_workers=min(PARALLEL_ITEMS, max(1, len(items)))) as pool:
        results = list(pool.map(one, items))
    return [c for checks in results for c in checks]


#: Libraries an item imports. Imported once before the items' threads start: two threads
#: importing requests (kubernetes, opensearch-py) at once can see a half-initialised module.
_LIBRARIES = {"argocd": ("kubernetes",), "charts": ("kubernetes", "yaml"),
              "disk": ("kubernetes",), "wal": ("kubernetes",),
              "versions": ("kubernetes",), "patches": ("kubernetes",), "s3": ("boto3",),
              "log_indices": ("opensearchpy",)}


def _preload(items):
    import importlib

    for name in sorted(set(lib for item in items for lib in _LIBRARIES.get(item, ()))):
        with contextlib.suppress(ImportError):  # the item reports it when it runs
            importlib.import_module(name)


# --------------------------------------------------------------------------- HTTP helpers


def _get_json(url, timeout, username=None, password=None):
    fetched = promhttp.get(url, timeout, username, password)
    if not fetched.ok:
        return None, fetched.error
    try:
        return json.loads(fetched.body), ""
    except ValueError as exc:
        return None, "not JSON: %s" % exc


def prom_query(base, promql, timeout):
    """Instant query against a Prometheus-compatible API (Thanos Query deduplicates):
    ([{metric, value}], error)."""
    return promhttp.query(base, promql, timeout)


# --------------------------------------------------------------------------- daily


def cluster_applications(p, kube, name):
    """(the Applications that deploy to this cluster, None) or (None, a check saying why they
    cannot be listed). An Application targets the cluster by spec.destination.name (the
    cluster or host name), or without a name by the platform's namespace."""
    if not p.get("context") and not p.get("kubeconfig"):
        return None, cl.undeclared(name, "wk_kube_context", "the API server holding the"
                                   " argoproj.io Applications")
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    ns = p["argocd_namespace"]
    try:
        listed = k.CustomObjectsApi(kube.client()).list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", ns, "applications", _request_timeout=p["timeout"])
    except ApiException as exc:
        if exc.status == 404:
            return None, cl.skipped(name, "no argoproj.io/v1alpha1 Application API (or"
                                    " namespace %s) on this API server: ArgoCD is not"
                                    " installed here" % ns)
        return None, cl.check(name, "fail", "list Applications in %s: HTTP %s %s" % (
            ns, exc.status, exc.reason), "check RBAC for applications.argoproj.io")
    names = {p["cluster"], p.get("host") or p["cluster"]}
    mine = []
    for item in listed.get("items", []):
        dest = (item.get("spec") or {}).get("destination") or {}
        if dest.get("name") in names or (not dest.get("name") and
                                         dest.get("namespace") == p["namespace"]):
            mine.append(item)
    return mine, None


def item_argocd(p, kube, now):
    name = "argocd applications"
    listed, problem = cluster_applications(p, kube, name)
    if problem:
        return [problem]
    apps = []
    for item in listed:
        status = item.get("status") or {}
        apps.append({
            "name": item["metadata"]["name"], "namespace": p["argocd_namespace"],
            "sync": (status.get("sync") or {}).get("status"),
            "health": (status.get("health") or {}).get("status"),
            "revision": (status.get("sync") or {}).get("revision"),
            "message": (status.get("health") or {}).get("message"),
        })
    return cl.evaluate_applications(apps, p["argocd_namespace"], p["cluster"])


def item_agent_targets(p, kube, now):
    name = "agent scrape targets"
    if not p.get("agent_url"):
        return [] if p["role"] == "observability" else [
            cl.undeclared(name, "wk_agent_url", "the Prometheus Agent")]
    data, error = _get_json(p["agent_url"].rstrip("/") + "/api/v1/targets?state=active",
                            p["timeout"], p.get("agent_username"), p.get("agent_password"))
    if error:
        return [cl.check(name, "fail", "%s/api/v1/targets: %s" % (p["agent_url"], error),
                         "the agent is down or unreachable")]
    targets = [{"job": t.get("labels", {}).get("job") or t.get("scrapePool"),
                "url": t.get("scrapeUrl"), "health": t.get("health"),
                "error": t.get("lastError")}
               for t in data.get("data", {}).get("activeTargets", [])]
    return [cl.evaluate_targets(targets)]


def item_remote_write(p, kube, now):
    """Agents' remote write and receivers' ingestion from two remote_write_sample results
    (the same evaluation as the status runbook)."""
    first, second = p.get("first") or {}, p.get("second") or {}
    if not first or not second:
        return [cl.check("remote write", "fail", "no samples were given",
                         "the playbook must pass two remote_write_sample results")]
    elapsed = second["sampled_at"] - first["sampled_at"]
    checks = evaluate_agent(first.get("agent"), second.get("agent"), elapsed,
                            p["thresholds"], second.get("remote_write_error", ""))
    earlier = dict((r["url"], r) for r in first.get("receivers", []))
    for receiver in second.get("receivers", []):
        checks.extend(evaluate_receiver(earlier.get(receiver["url"], receiver), receiver,
                                        elapsed, now, p["thresholds"]))
    if not checks:
        return [cl.undeclared("remote write", "wk_agent_url / wk_receive_http_urls",
                              "an agent or receivers")]
    return checks


def item_grafana(p, kube, now):
    if not p.get("grafana_url"):
        return [cl.undeclared("grafana", "wk_grafana_url", "Grafana")]
    base, t = p["grafana_url"].rstrip("/"), p["timeout"]
    user, password = p.get("grafana_username"), p.get("grafana_password")
    health, error = _get_json(base + "/api/health", t)
    if error:
        return [cl.check("grafana reachable", "fail", "%s/api/health: %s" % (base, error),
                         "Grafana is down or unreachable")]
    database = health.get("database")
    reach = cl.check("grafana reachable", "ok" if database == "ok" else "fail",
                     "version %s, database %s" % (health.get("version", "?"), database),
                     "" if database == "ok" else "Grafana cannot reach its database")
    found, error = _get_json(base + "/api/search?type=dash-db&limit=50", t, user, password)
    if error:
        hint = ("set wk_grafana_auth (a viewer account)" if "401" in error or "403" in error
                else "the search API does not answer")
        return [reach, cl.check("grafana dashboards", "fail", "/api/search: " + error, hint)]
    broken, slow = [], []
    for dash in found[:20]:
        started = time.monotonic()
        _, error = _get_json("%s/api/dashboards/uid/%s" % (base, dash.get("uid")), t, user,
                             password)
        if error:
            broken.append("%s (%s)" % (dash.get("title"), error))
        elif time.monotonic() - started > 2:
            slow.append(dash.get("title"))
    evidence = "%d dashboard(s) found, %d opened" % (len(found), min(len(found), 20))
    if broken:
        return [reach, cl.check("grafana dashboards", "fail", evidence + "; failing: " +
                                ", ".join(broken), "open them in Grafana; check provisioning")]
    if not found:
        return [reach, cl.check("grafana dashboards", "warn", evidence,
                                "no dashboard is provisioned (or the account cannot see any)")]
    if slow:
        return [reach, cl.check("grafana dashboards", "warn", evidence + "; slow (> 2 s): " +
                                ", ".join(slow))]
    return [reach, cl.check("grafana dashboards", "ok", evidence)]


def discovered_volumes(p, kube):
    """Paths of the hostPath / local PersistentVolumes bound to claims in the cluster's
    namespace, as {path: "pv NAME (claim CLAIM)"}; {} without a kube context."""
    if not p.get("context") and not p.get("kubeconfig"):
        return {}
    from ansible_collections.watchkeeper.platform.plugins.module_utils import kube as kmod

    # Raw JSON: deserialising into the client's models costs more than the request.
    response = kmod.core(kube.client()).list_persistent_volume(
        _request_timeout=p["timeout"], _preload_content=False)
    found = {}
    for pv in json.loads(response.data).get("items", []):
        spec, ref = pv.get("spec") or {}, (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("namespace") != p["namespace"] or \
                (pv.get("status") or {}).get("phase") != "Bound":
            continue
        source = spec.get("hostPath") or spec.get("local") or {}
        if source.get("path"):
            found[source["path"]] = "pv %s (claim %s)" % (pv["metadata"]["name"], ref.get("name"))
    return found


def data_volumes(p, kube):
    """The data volumes to measure: wk_data_volume_paths, then the discovered PersistentVolumes
    (hostPath / local) of the namespace, as {path: where it came from}."""
    volumes = dict((path, "wk_data_volume_paths") for path in p.get("data_volume_paths") or [])
    for path, what in discovered_volumes(p, kube).items():
        volumes.setdefault(path, what)
    return volumes


def _mount_of(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def directory_bytes(path, limit_entries=200000):
    """Bytes allocated under `path` (du -s), or None past `limit_entries` entries."""
    total, seen, todo = 0, 0, [path]
    while todo:
        current = todo.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > limit_entries:
                return None
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += getattr(stat, "st_blocks", 0) * 512
            if entry.is_dir(follow_symlinks=False):
                todo.append(entry.path)
    return total


def disk_usage(path):
    """{total, used, available, directory_bytes, mount} of the filesystem holding `path`."""
    if not os.path.isdir(path):
        return {"error": "%s is not a directory on this host (watchkeeper must run where the"
                " volume is mounted)" % path}
    st = os.statvfs(path)
    return {"total": st.f_blocks * st.f_frsize,
            "used": (st.f_blocks - st.f_bfree) * st.f_frsize,
            "available": st.f_bavail * st.f_frsize,
            "directory_bytes": directory_bytes(path), "mount": _mount_of(path)}


def item_disk(p, kube, now):
    volumes = data_volumes(p, kube)
    if not volumes:
        return [cl.skipped("disk", "no data volume known: set wk_data_volume_paths, or"
                           " wk_kube_context to discover hostPath/local PersistentVolumes")]
    checks = []
    for path in sorted(volumes):
        result = cl.evaluate_disk(path, disk_usage(path), p["thresholds"])
        result["evidence"] += " [%s]" % volumes[path]
        checks.append(result)
    return checks


# --------------------------------------------------------------------------- weekly


def _s3(p):
    from ansible_collections.watchkeeper.platform.plugins.module_utils import s3

    return s3.connect(p)


def bucket_usage(client, bucket):
    """Bytes and objects of current versions, and how many noncurrent versions there are."""
    usage = {"bytes": 0, "objects": 0, "versions": 0, "noncurrent_bytes": 0}
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for v in page.get("Versions", []):
                if v.get("IsLatest"):
                    usage["bytes"] += v["Size"]
                    usage["objects"] += 1
                else:
                    usage["versions"] += 1
                    usage["noncurrent_bytes"] += v["Size"]
        return usage
    except Exception as exc:  # botocore ClientError, endpoint errors
        return {"error": "%s: %s" % (type(exc).__name__, exc)}


def choose_baseline(history, now, min_age=GROWTH_BASELINE_SECONDS):
    """The record to compare with: the newest at least `min_age` old, else the oldest."""
    old = [r for r in history if now - r["at"] >= min_age]
    if old:
        return max(old, key=lambda r: r["at"])
    return min(history, key=lambda r: r["at"]) if history else None


def _record_path(p, bucket):
    key = hashlib.sha256(("%s|%s" % (p.get("s3_endpoint") or "aws", bucket)).encode())
    return os.path.join(p["state_dir"], "checklists", "s3-%s-%s-%s.json" % (
        re.sub(r"[^A-Za-z0-9_.-]", "_", p["cluster"]), bucket, key.hexdigest()[:8]))


def item_s3(p, kube, now):
    if p["role"] == "workload":
        return []  # the buckets are the observability cluster's (checked once, not per agent)
    buckets = [b for b in p.get("buckets") or [] if b]
    if not buckets:
        return [cl.undeclared("s3 buckets", "wk_s3_bucket_blocks / wk_s3_bucket_backups",
                              "the buckets")]
    client = _s3(p)
    checks = []
    for bucket in buckets:
        usage = bucket_usage(client, bucket)
        history = []
        path = _record_path(p, bucket) if p.get("state_dir") else None
        if path and os.path.exists(path):
            try:
                with open(path) as handle:
                    history = json.load(handle)
            except (OSError, ValueError):
                history = []
        baseline = choose_baseline(history, now)
        result = cl.evaluate_bucket(bucket, usage, baseline, now, p["thresholds"])
        checks.append(result)
        if path and not usage.get("error"):
            history = [*history, {"at": now, "bytes": usage["bytes"],
                                   "objects": usage["objects"]}][-_HISTORY:]
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = "%s.%d.tmp" % (path, os.getpid())
            with open(tmp, "w") as handle:
                json.dump(history, handle)
            os.replace(tmp, path)
    return checks


def item_tsdb(p, kube, now):
    if not p.get("prometheus_url"):
        return [] if p["role"] == "workload" else [
            cl.undeclared("prometheus tsdb", "wk_prometheus_url", "a full Prometheus server")]
    base = p["prometheus_url"].rstrip("/")
    fetched = promhttp.get(base + "/metrics", p["timeout"])
    if not fetched.ok:
        return [cl.check("prometheus tsdb %s" % base, "fail", "/metrics: " + fetched.error,
                         "the Prometheus server is down or unreachable")]
    samples = promtext.parse(fetched.body, (
        "prometheus_tsdb_storage_blocks_bytes", "prometheus_tsdb_head_series",
        "prometheus_tsdb_retention_limit_bytes", "prometheus_tsdb_wal_storage_size_bytes"))
    return [cl.evaluate_tsdb(samples, base, p["thresholds"])]


def _wal_dirs(root):
    """WAL directories under a data directory: root/wal, root/*/wal (Thanos Receive tenants)."""
    found = []
    if os.path.isdir(os.path.join(root, "wal")):
        found.append(os.path.join(root, "wal"))
    try:
        for entry in os.scandir(root):
            if entry.is_dir() and os.path.isdir(os.path.join(entry.path, "wal")):
                found.append(os.path.join(entry.path, "wal"))
    except OSError:
        pass
    return found


def item_wal(p, kube, now):
    volumes = data_volumes(p, kube)
    if p.get("prometheus_tsdb_path"):
        volumes.setdefault(p["prometheus_tsdb_path"], "wk_prometheus_tsdb_path")
    if not volumes:
        return [cl.skipped("wal", "no data volume known: set wk_data_volume_paths, or"
                           " wk_kube_context to discover hostPath/local PersistentVolumes")]
    checks = []
    for path in sorted(volumes):
        dirs = _wal_dirs(path)
        if not dirs:
            continue  # a volume without a WAL (store gateway, Alertmanager)
        sizes = [directory_bytes(d) for d in dirs]
        size = None if any(s is None for s in sizes) else sum(sizes)
        result = cl.evaluate_wal(path, size, p["thresholds"])
        result["evidence"] += " in %d WAL dir(s) [%s]" % (len(dirs), volumes[path])
        checks.append(result)
    if not checks:
        return [cl.skipped("wal", "no WAL directory under %s" % ", ".join(sorted(volumes)))]
    return checks


def item_alerts(p, kube, now):
    if not p.get("alertmanager_url"):
        return [] if p["role"] == "workload" else [
            cl.undeclared("alertmanager alerts", "wk_alertmanager_url", "Alertmanager")]
    base = p["alertmanager_url"].rstrip("/")
    data, error = _get_json(base + "/api/v2/alerts", p["timeout"])
    if error:
        return [cl.check("alertmanager alerts", "fail", "%s/api/v2/alerts: %s" % (base, error),
                         "Alertmanager is down or unreachable: alerts are not delivered")]
    alerts = []
    for a in data:
        started = _iso_seconds(a.get("startsAt"))
        alerts.append({"name": a.get("labels", {}).get("alertname", "?"),
                       "state": (a.get("status") or {}).get("state", "active"),
                       "starts_at": started if started is not None else now,
                       "labels": a.get("labels", {})})
    result = cl.evaluate_alerts(alerts, now, p["thresholds"])
    result["evidence"] += " (GET %s/api/v2/alerts)" % base
    return [result]


def _iso_seconds(text):
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d*", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def item_log_indices(p, kube, now):
    if not p.get("opensearch_url"):
        return [] if p["role"] == "workload" else [
            cl.undeclared("log index cleanup", "wk_opensearch_url", "OpenSearch")]
    from ansible_collections.watchkeeper.platform.plugins.module_utils import opensearch_api

    pattern = p["log_index_pattern"]
    retention = cl.thresholds_with_defaults(p["thresholds"])["log_retention_days"]
    client = opensearch_api.connect({"url": p["opensearch_url"],
                                     "username": p.get("opensearch_username"),
                                     "password": p.get("opensearch_password"),
                                     "request_timeout": p["timeout"]})
    try:
        rows = opensearch_api.call("GET _cat/indices/%s" % pattern, client.cat.indices,
                                   index=pattern, format="json", h="index,creation.date",
                                   expand_wildcards="open,closed")
    except opensearch_api.OpenSearchFailure as exc:
        if opensearch_api.not_found(exc):
            rows = []
        else:
            return [cl.check("log index cleanup %s" % pattern, "fail", exc.message, exc.hint)]
    indices = [{"index": r["index"], "creation_date_ms": int(r["creation.date"])
                if r.get("creation.date") else None} for r in rows]
    decisions = select_old_indices(indices, pattern, retention, "name", "%Y.%m.%d",
                                   datetime.fromtimestamp(now, tz=UTC))
    return [cl.evaluate_index_cleanup(decisions, pattern, retention)]


# --------------------------------------------------------------------------- monthly


def latest_known(p):
    """The latest-known table: the file's mapping, overridden by the inventory's."""
    table = {}
    if p.get("versions_latest_file"):
        import yaml

        with open(p["versions_latest_file"]) as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ValueError("%s must hold a mapping component: version"
                             % p["versions_latest_file"])
        table.update((str(k), str(v)) for k, v in data.items())
    table.update((str(k), str(v)) for k, v in (p.get("versions_latest") or {}).items())
    return table


def running_images(p, kube):
    """{component: tag} of the images the namespace's pods run (component = the image's
    last path segment, e.g. quay.io/thanos/thanos:v0.40.1 -> thanos)."""
    if not p.get("context") and not p.get("kubeconfig"):
        return {}
    from ansible_collections.watchkeeper.platform.plugins.module_utils import kube as kmod

    response = kmod.core(kube.client()).list_namespaced_pod(
        p["namespace"], _request_timeout=p["timeout"], _preload_content=False)
    found = {}
    for pod in json.loads(response.data).get("items", []):
        for container in (pod.get("spec") or {}).get("containers") or []:
            image = container.get("image") or ""
            repo, _, tag = image.rpartition(":")
            if not repo or "/" in tag:
                continue
            found[repo.rsplit("/", 1)[-1]] = tag
    return found


def _running(p, kube):
    running = dict((str(k), str(v)) for k, v in (p.get("versions") or {}).items())
    for component, tag in running_images(p, kube).items():
        running.setdefault(component, tag)
    return running


def item_versions(p, kube, now):
    return cl.evaluate_versions(_running(p, kube), latest_known(p))


def item_patches(p, kube, now):
    return [cl.evaluate_patches(_running(p, kube), latest_known(p))]


def chart_index(repo, timeout, cache):
    """The chart repository's index.yaml as {chart: [entries]} (cached per run)."""
    if repo not in cache:
        import yaml

        fetched = promhttp.get(repo.rstrip("/") + "/index.yaml", timeout)
        if not fetched.ok:
            cache[repo] = "%s/index.yaml: %s" % (repo.rstrip("/"), fetched.error)
        else:
            cache[repo] = (yaml.safe_load(fetched.body) or {}).get("entries") or {}
    return cache[repo]


def chart_row(application, entry, index):
    """One helmCharts entry against its repository's index: the newest release (no
    pre-release) and the release notes' breaking changes between the app versions."""
    from ansible_collections.watchkeeper.platform.plugins.module_utils import release_notes

    row = {"application": application, "chart": entry.get("name") or "?",
           "version": str(entry.get("version") or "")}
    if isinstance(index, str):
        row["error"] = index
        return row
    releases = [e for e in index.get(row["chart"]) or []
                if "-" not in str(e.get("version", "")) and cl.parse_version(e.get("version"))]
    if not releases:
        row["newest"] = None
        return row
    newest = max(releases, key=lambda e: cl.parse_version(e["version"]))
    current = next((e for e in releases if str(e["version"]) == row["version"]), {})
    row.update(newest=str(newest["version"]), newest_app_version=newest.get("appVersion"),
               app_version=current.get("appVersion"))
    program = ("thanos" if "thanos" in row["chart"] else
               "prometheus" if "prometheus" in row["chart"] else None)
    if program and row["app_version"] and row["newest_app_version"]:
        table = release_notes.THANOS if program == "thanos" else release_notes.PROMETHEUS
        with contextlib.suppress(ValueError):
            row["notes"] = ["%s %s: %s" % (program, n["since"], n["change"]) for n in
                            release_notes.between(table, row["app_version"],
                                                  row["newest_app_version"])]
    return row


def item_charts(p, kube, now):
    """The Helm charts this cluster's Applications deploy (helmCharts in their
    Kustomization, read from git) against the newest release in each chart repository."""
    from ansible_collections.watchkeeper.platform.plugins.module_utils import gitops_repo

    name = "helm charts"
    listed, problem = cluster_applications(p, kube, name)
    if problem:
        return [problem]
    sources = {}
    for item in listed:
        source = (item.get("spec") or {}).get("source") or {}
        if source.get("path") and source.get("repoURL"):
            key = (p.get("git_url") or source["repoURL"], source.get("targetRevision") or "")
            sources.setdefault(key, []).append((item["metadata"]["name"], source["path"]))
    if not sources:
        return [cl.skipped(name, "no Application of this cluster has a git path")]
    import yaml

    rows, cache = [], {}
    for (url, revision), apps in sorted(sources.items()):
        with gitops_repo.Clone(url, revision) as clone:
            for application, path in sorted(apps):
                for kname in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
                    kpath = clone.path(os.path.join(path, kname))
                    if os.path.exists(kpath):
                        with open(kpath) as handle:
                            charts = (yaml.safe_load(handle) or {}).get("helmCharts") or []
                        for entry in charts:
                            index = chart_index(entry.get("repo") or "", p["timeout"], cache)
                            rows.append(chart_row(application, entry, index))
                        break
    if not rows:
        return [cl.skipped(name, "no Application of this cluster deploys a Helm chart"
                           " through kustomize helmCharts")]
    return [cl.evaluate_chart(r) for r in rows]


def item_resources(p, kube, now):
    if not p.get("query_url"):
        return [cl.undeclared("resource usage", "wk_query_url", "Thanos Query")]
    match = '{cluster="%s"}' % p["cluster"]
    window = p["resource_window"]
    memory_q = "max by (job) (max_over_time(process_resident_memory_bytes%s[%s]))" % (
        match, window)
    cpu_q = "max by (job) (rate(process_cpu_seconds_total%s[5m]))" % match
    memory, error = prom_query(p["query_url"], memory_q, p["timeout"])
    if error:
        return [cl.check("resource usage", "fail", "%s: %s" % (memory_q, error),
                         "Thanos Query is down or refused the query")]
    cpu, error = prom_query(p["query_url"], cpu_q, p["timeout"])
    result = cl.evaluate_resources(
        dict((r["metric"].get("job", "?"), r["value"]) for r in memory),
        dict((r["metric"].get("job", "?"), r["value"]) for r in cpu) if not error else {},
        p["thresholds"])
    result["evidence"] += " (Query: %s)" % memory_q
    return [result]


BACKUP_METRIC = "watchkeeper_backup_last_verified_timestamp_seconds"


def _backup_key(labels):
    keep = dict((k, v) for k, v in labels.items() if k not in ("__name__", "cluster", "instance",
                                                               "job", "replica",
                                                               "receive_replica", "tenant_id"))
    return ",".join("%s=%s" % kv for kv in sorted(keep.items())) or "backup"


def backup_verifications(p):
    """{kind: newest verification epoch}, and where it was read (Query, textfiles)."""
    found, sources = {}, []
    if p.get("query_url"):
        rows, error = prom_query(p["query_url"], BACKUP_METRIC, p["timeout"])
        sources.append("Query %s%s" % (p["query_url"], (" (%s)" % error) if error else ""))
        mine = [r for r in rows if r["metric"].get("cluster") == p["cluster"]]
        for r in mine or rows:
            key = _backup_key(r["metric"])
            found[key] = max(found.get(key, 0), r["value"])
    directory = p.get("textfile_dir")
    if directory and os.path.isdir(directory):
        sources.append("textfiles in %s" % directory)
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".prom"):
                continue
            try:
                with open(os.path.join(directory, name)) as handle:
                    samples = promtext.parse(handle.read(), (BACKUP_METRIC,))
            except (OSError, ValueError):
                continue
            for labels, value in samples.get(BACKUP_METRIC, []):
                if labels.get("cluster") not in (None, p["cluster"]):
                    continue
                key = _backup_key(labels)
                found[key] = max(found.get(key, 0), value)
    return found, sources


def item_backup_age(p, kube, now):
    if p["role"] == "workload":
        return []  # backups are the observability cluster's (bucket, OpenSearch, TSDB)
    if not p.get("query_url") and not p.get("textfile_dir"):
        return [cl.undeclared("backup verification age", "wk_query_url",
                              "Thanos Query to read %s from" % BACKUP_METRIC)]
    found, sources = backup_verifications(p)
    return [cl.evaluate_backup_age(found, now, p["thresholds"], " and ".join(sources))]


ITEMS = {
    "argocd": item_argocd,
    "agent_targets": item_agent_targets,
    "remote_write": item_remote_write,
    "grafana": item_grafana,
    "disk": item_disk,
    "s3": item_s3,
    "tsdb": item_tsdb,
    "wal": item_wal,
    "alerts": item_alerts,
    "log_indices": item_log_indices,
    "versions": item_versions,
    "charts": item_charts,
    "patches": item_patches,
    "resources": item_resources,
    "backup_age": item_backup_age,
}
