# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""The I/O of the diagnostics: gather the evidence diagnose.py ranks.

Every read reuses the existing helpers (agent_read for the agent's metrics and log, promhttp
for HTTP probes and queries, kube for the API, remote_write / receiver_health for the metric
arithmetic). Errors become evidence, never exceptions, except a Kubernetes API that cannot be
reached at all (kube.KubeFailure), which the module reports.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import time
from urllib.parse import urlsplit

from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_health,
    agent_logs,
    agent_read,
    diagnose,
    kube,
    promhttp,
    promtext,
    receiver_health,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    queue_stats,
    queues,
)

#: Options of the diagnose and recover modules (compose with kube.CONNECTION_SPEC and
#: agent_read.AGENT_SPEC).
DIAGNOSE_SPEC = dict(
    cluster=dict(type="str"),
    remote_write_url=dict(type="str"),
    receiver_urls=dict(type="list", elements="str", default=[]),
    grpc_endpoints=dict(type="list", elements="str", default=[]),
    remote_write_port=dict(type="int", default=19291),
    query_url=dict(type="str"),
    expected_jobs=dict(type="list", elements="str", default=["prometheus-agent"]),
    lookback=dict(type="float", default=3600.0),
    stale_seconds=dict(type="float", default=120.0),
    lag_threshold=dict(type="float", default=120.0),
    send_threshold=dict(type="float", default=1.0),
    rate_window=dict(type="float", default=5.0),
    configmap=dict(type="str"),
    configmap_key=dict(type="str"),
)


def yaml_load(text):
    import yaml

    return yaml.safe_load(text) or {}


def urls_of(config):
    return [str(q.get("url")) for q in (config.get("remote_write") or [])
            if isinstance(q, dict) and q.get("url")]


def agent_config_map(client, params, pod):
    """(configmap name, key, text) of the agent's configuration: the `configmap` option, else
    the pod's configMap volume whose key holds a remote_write section. (None, None, why) when
    not found."""
    from kubernetes.client.exceptions import ApiException

    names = [params["configmap"]] if params.get("configmap") else [
        v.config_map.name for v in pod.spec.volumes or [] if v.config_map]
    for name in names:
        try:
            cm = kube.core(client).read_namespaced_config_map(name, params["namespace"])
        except ApiException as exc:
            raise kube.api_error(exc, "read ConfigMap %s/%s" % (params["namespace"], name)) \
                from exc
        for key, text in sorted((cm.data or {}).items()):
            if params.get("configmap_key") and key != params["configmap_key"]:
                continue
            if "remote_write" in text:
                return name, key, text
    return None, None, "no ConfigMap of the agent pod holds a remote_write section"


def loaded_config(params, pod_name, client):
    """The agent's running configuration (its /api/v1/status/config), or (None, why)."""
    try:
        if params.get("agent_url"):
            fetched = promhttp.get(params["agent_url"].rstrip("/") + "/api/v1/status/config",
                                   params["timeout"], params.get("agent_username"),
                                   params.get("agent_password"))
            if not fetched.ok:
                return None, fetched.error
            body = fetched.body
        else:
            body = kube.proxy_get(client, params["namespace"], pod_name, params["http_port"],
                                  "api/v1/status/config", timeout=params["timeout"])
        return yaml_load(json.loads(body)["data"]["yaml"]), ""
    except Exception as exc:  # JSON/YAML/API errors: say what could not be read
        return None, "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])


def probe(url, timeout):
    """{"error", "status"} of a GET of a remote-write URL: a receive endpoint answers 405 to
    a GET (it exists); 404 is a wrong path; no answer is classified (refused, DNS, TLS...)."""
    fetched = promhttp.get(url, timeout)
    status = fetched.status
    if fetched.ok or status == 405:
        return {"error": "", "status": status}
    return {"error": fetched.error, "status": status}


def remote_write(client, params):
    """(findings, facts) of one agent's remote write."""
    sts, pods = kube.statefulset_pods(client, params["namespace"], params["statefulset"])
    if not pods and not params.get("pod") and not (sts.spec.replicas or 0):
        # Scaled to zero (by hand, or a bad sync): no agent runs, nothing is scraped or sent.
        where = "%s/%s" % (params["namespace"], params["statefulset"])
        return [diagnose.finding(
            "agent_down", "agent", "fail",
            "StatefulSet %s is scaled to 0 replicas: no agent runs, nothing is scraped or"
            " sent" % where,
            hint="scale it back (kubectl scale statefulset %s --replicas=1), or re-sync it from"
                 " git: the emergency runbooks do when wk_agent_application is set"
                 % params["statefulset"])], {"pod": None, "replicas": 0}
    _, pod = agent_read.agent_pod(client, params)
    name = pod.metadata.name
    first = agent_read.sample(client, params, name, agent_health.METRICS)
    began = time.time()
    config, config_error = loaded_config(params, name, client)
    cm_name, cm_key, cm_text = agent_config_map(client, params, pod)
    configmap_urls = urls_of(yaml_load(cm_text)) if cm_name else None
    loaded = urls_of(config) if config is not None else None
    if loaded is None and first["samples"]:
        loaded = [u for _, u in queues(first["samples"])] or None
    probes = {}
    for url in sorted(set((loaded or []) + ([params["remote_write_url"]]
                                            if params.get("remote_write_url") else []))):
        probes[url] = probe(url, params["timeout"])
    time.sleep(max(0.0, float(params["rate_window"]) - (time.time() - began)))
    second = agent_read.sample(client, params, name, agent_health.METRICS)
    elapsed = max(0.001, time.time() - began)
    stats = [queue_stats(first["samples"], second["samples"], elapsed, r, u)
             for r, u in queues(second["samples"])]
    started = promtext.maximum(second["samples"], agent_health.START_TIME)
    lines, source, log_error = agent_read.log_lines(client, params, name, 3600.0)
    since = agent_logs.process_started(lines) or started
    log = agent_logs.summarize(lines, since=since) if not log_error else {"classes": {}}
    evidence = {
        "ready": second["ready"], "ready_detail": second["detail"],
        "inventory_url": params.get("remote_write_url") or "",
        "configmap_urls": configmap_urls, "loaded_urls": loaded, "probes": probes,
        "queues": stats, "log_classes": log["classes"], "log_source": source,
    }
    findings = diagnose.remote_write_findings(evidence, float(params["lag_threshold"]),
                                              send_threshold=float(params["send_threshold"]))
    if config_error:
        findings.append(diagnose.finding("unread", "agent configuration", "warn",
                                         "running configuration not read: %s" % config_error,
                                         hint="the agent's /api/v1/status/config", score=5))
    if log_error:
        findings.append(diagnose.finding("unread", "agent log", "warn", log_error,
                                         hint="set wk_agent_log_path", score=5))
    facts = {"pod": name, "configmap": cm_name, "configmap_key": cm_key,
             "configmap_urls": configmap_urls, "loaded_urls": loaded,
             "inventory_url": evidence["inventory_url"], "probes": probes}
    return diagnose.rank(findings), facts


def _host(url_or_endpoint):
    text = url_or_endpoint if "//" in url_or_endpoint else "//" + url_or_endpoint
    return urlsplit(text).hostname


def receiver_connectivity(params):
    """Findings per receiver: HTTP /-/ready, remote-write and gRPC ports reachable from here,
    and forward errors between receivers over the rate window."""
    timeout = params["timeout"]
    findings = []
    firsts = {}
    for url in params["receiver_urls"]:
        metrics = promhttp.get(url.rstrip("/") + "/metrics", timeout)
        if metrics.ok:
            firsts[url] = promtext.parse(metrics.body, receiver_health.METRICS)
    time.sleep(max(0.0, float(params["rate_window"])))
    grpc_by_host = {_host(e): e for e in params["grpc_endpoints"]}
    for url in params["receiver_urls"]:
        host = _host(url)
        label = "receiver %s" % host
        ready = promhttp.get(url.rstrip("/") + "/-/ready", timeout)
        if not ready.ok:
            cause = diagnose.endpoint_cause(ready.error, 0 if ready.status == 503
                                            else ready.status) or "not_ready"
            findings.append(diagnose.finding(
                cause if cause != "http_5xx" else "not_ready", "%s ready" % label, "fail",
                "%s/-/ready: %s" % (url, ready.error),
                hint="the receiver is down or not Ready: run receiver-down", score=92))
        else:
            findings.append(diagnose.finding("ok", "%s ready" % label, "ok",
                                             "%s/-/ready answered 200" % url, hint="", score=0))
        rw = "http://%s:%d/api/v1/receive" % (host, params["remote_write_port"])
        rw_error = probe(rw, timeout)["error"]
        findings.append(_port_finding("%s remote-write" % label, rw, rw_error, 88))
        grpc = grpc_by_host.get(host)
        if grpc:
            findings.append(_port_finding("%s gRPC" % label, grpc,
                                          promhttp.tcp_probe("//" + grpc, timeout), 87))
        metrics = promhttp.get(url.rstrip("/") + "/metrics", timeout)
        if metrics.ok and url in firsts:
            second = promtext.parse(metrics.body, receiver_health.METRICS)
            errors = receiver_health.counter_delta(firsts[url], second, receiver_health.FORWARDS,
                                                   result="error") or 0
            total = receiver_health.counter_delta(firsts[url], second,
                                                  receiver_health.FORWARDS) or 0
            if errors > 0:
                findings.append(diagnose.finding(
                    "forward_errors", "%s forwards" % label, "fail",
                    "%d of %d forwards to other receivers failed in %.0f s" % (
                        errors, total, params["rate_window"]),
                    hint="a peer in the ring is unreachable from this receiver: see the peers'"
                    " gRPC rows", score=70))
            else:
                findings.append(diagnose.finding("ok", "%s forwards" % label, "ok",
                                                 "%d forwards, none failed" % total, hint="",
                                                 score=0))
    return diagnose.rank(findings)


def _port_finding(name, target, error, score):
    if not error:
        return diagnose.finding("ok", name, "ok", "%s reachable" % target, hint="", score=0)
    cause = diagnose.endpoint_cause(error)
    return diagnose.finding(cause, name, "fail", "%s: %s" % (target, error), score=score)


def query_value(base, promql, timeout):
    rows, error = promhttp.query(base, promql, timeout)
    if error:
        raise ValueError("%s: %s" % (promql, error))
    return max((r["value"] for r in rows), default=None)


def missing_metrics(params):
    """Findings per expected job of the cluster, from Thanos Query."""
    base, cluster = params["query_url"], params["cluster"]
    step = "15s"
    lookback = "%ds" % int(params["lookback"])
    findings = []
    now = time.time()
    for job in params["expected_jobs"]:
        sel = 'up{cluster="%s",job="%s"}' % (cluster, job)
        try:
            newest = query_value(base, "max(max_over_time(timestamp(%s)[%s:%s]))" % (
                sel, lookback, step), params["timeout"])
            exact = query_value(base, "max(timestamp(%s))" % sel, params["timeout"])
            up_now = query_value(base, "max(%s)" % sel, params["timeout"])
            last_up = query_value(base, "max(max_over_time(timestamp(%s == 1)[%s:%s]))" % (
                sel, lookback, step), params["timeout"])
        except ValueError as exc:
            findings.append(diagnose.finding("query_failed", "%s job %s" % (cluster, job),
                                             "fail", "Thanos Query %s: %s" % (base, exc),
                                             hint="check wk_query_url and Thanos Query",
                                             score=95))
            continue
        if exact is not None:
            newest = max(newest or 0, exact)
        findings.append(diagnose.job_findings(cluster, job, now, newest, up_now, last_up,
                                              float(params["stale_seconds"])))
    bad = [f for f in findings if f["cause"] == "not_delivered"]
    if bad and len(bad) == len(params["expected_jobs"]):
        for item in bad:  # every job of the cluster: the agent's delivery, not the targets
            item["evidence"] += "; every expected job of %s is missing" % cluster
    return diagnose.rank(findings)


def query_stores(base, timeout):
    """{endpoint: lastError or ""} of Thanos Query's StoreAPI endpoints, or (None, why)."""
    fetched = promhttp.get(base.rstrip("/") + "/api/v1/stores", timeout)
    if not fetched.ok:
        return None, fetched.error
    try:
        data = json.loads(fetched.body).get("data") or {}
    except ValueError as exc:
        return None, "not JSON: %s" % exc
    out = {}
    for entries in data.values():
        for entry in entries or []:
            out[entry.get("name", "")] = entry.get("lastError") or ""
    return out, ""


def network(params, agent_url_used=None):
    """(findings, rows): reachability of each remote-write URL (from here, TCP then HTTP) and
    each receiver gRPC endpoint (TCP from here, and as Thanos Query sees it)."""
    timeout = params["timeout"]
    rows, findings = [], []
    cluster = params.get("cluster") or "agent"
    targets = []
    if params.get("remote_write_url"):
        targets.append(params["remote_write_url"])
    for url in agent_url_used or []:
        if url not in targets:
            targets.append(url)
    for url in targets:
        tcp = promhttp.tcp_probe(url, timeout)
        result = tcp or probe(url, timeout)["error"]
        source = "agent %s" % cluster
        rows.append((source, "remote-write %s" % url, result))
        findings.append(_port_finding("%s -> %s" % (source, url), url, result, 88))
    if params["grpc_endpoints"]:
        stores, why = query_stores(params["query_url"], timeout) if params.get("query_url") \
            else (None, "no wk_query_url")
        for endpoint in params["grpc_endpoints"]:
            tcp = promhttp.tcp_probe("//" + endpoint, timeout)
            rows.append(("here", "gRPC %s" % endpoint, tcp))
            findings.append(_port_finding("here -> gRPC %s" % endpoint, endpoint, tcp, 86))
            if stores is None:
                view = "Query's view unknown: %s" % why
                status = "warn"
            elif endpoint not in stores:
                view = "not among Thanos Query's stores"
                status = "fail"
            else:
                view = stores[endpoint]
                status = "fail" if view else "ok"
            rows.append(("query", "gRPC %s" % endpoint, view))
            cause = "query_store" if status != "ok" else "ok"
            findings.append(diagnose.finding(
                cause, "query -> gRPC %s" % endpoint, status,
                "%s: %s" % (endpoint, view or "healthy (Query's /api/v1/stores)"),
                hint="Query cannot use this receiver: check its --endpoint list and the port",
                score=84 if status == "fail" else 0))
    return diagnose.rank(findings), rows

