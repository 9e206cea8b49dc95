# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Reads of a Prometheus Agent for the agent modules: its /metrics and readiness (the
inventory's agent URL, else the pod proxy), its log lines (a file the inventory names, else the
Kubernetes API's pod log), and its WAL's size on disk (when its volume is a hostPath / local
PersistentVolume readable from here, as in the lab). Errors are returned, not raised, so a
health check reports what it could not read.
"""

from __future__ import absolute_import, annotations, division, print_function

import os

from ansible_collections.watchkeeper.platform.plugins.module_utils import kube, promhttp, promtext

#: Options the agent modules share (compose with kube.CONNECTION_SPEC).
AGENT_SPEC = dict(
    statefulset=dict(type="str", default="prometheus-agent"),
    pod=dict(type="str"),
    agent_url=dict(type="str"),
    agent_username=dict(type="str"),
    agent_password=dict(type="str", no_log=True),
    http_port=dict(type="int", default=9090),
    log_path=dict(type="str"),
    log_tail_bytes=dict(type="int", default=4 * 1024 * 1024),
    timeout=dict(type="float", default=5.0),
)


def agent_pod(client, params):
    """The agent pod (the given one, else the StatefulSet's first) and its StatefulSet."""
    sts, pods = kube.statefulset_pods(client, params["namespace"], params["statefulset"])
    if params.get("pod"):
        pods = [p for p in pods if p.metadata.name == params["pod"]]
    if not pods:
        raise kube.KubeFailure(
            "StatefulSet %s/%s has no pod%s" % (params["namespace"], params["statefulset"],
                                                 " %s" % params["pod"] if params.get("pod")
                                                 else ""),
            "check wk_namespace and that the agent is deployed")
    return sts, pods[0]


def sample(client, params, pod_name, names):
    """{"ready", "detail", "samples", "source"} of the agent."""
    if params.get("agent_url"):
        base = params["agent_url"].rstrip("/")
        ready = promhttp.get(base + "/-/ready", params["timeout"], params.get("agent_username"),
                             params.get("agent_password"))
        body = promhttp.get(base + "/metrics", params["timeout"], params.get("agent_username"),
                            params.get("agent_password"))
        out = {"ready": ready.ok, "detail": ready.error, "samples": {}, "url": base,
               "source": base}
        if body.ok:
            try:
                out["samples"] = promtext.parse(body.body, names)
            except ValueError as exc:
                out["detail"] = out["detail"] or "unparseable /metrics: %s" % exc
        elif not out["detail"]:
            out["detail"] = "/metrics: " + body.error
        return out
    source = "pod proxy %s/%s:%s" % (params["namespace"], pod_name, params["http_port"])
    out = {"ready": False, "detail": "", "samples": {}, "url": source, "source": source}
    try:
        kube.proxy_get(client, params["namespace"], pod_name, params["http_port"], "-/ready",
                       timeout=params["timeout"])
        out["ready"] = True
        text = kube.proxy_get(client, params["namespace"], pod_name, params["http_port"],
                              "metrics", timeout=params["timeout"])
        out["samples"] = promtext.parse(text, names)
    except Exception as exc:  # ApiException (503 while not ready), timeouts, parse errors
        out["detail"] = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])
    return out


def log_lines(client, params, pod_name, since_seconds):
    """(lines, source, error) of the agent's log: the tail of `log_path` (fields
    {namespace} and {pod}), else the Kubernetes API's pod log for the last `since_seconds`."""
    if params.get("log_path"):
        path = params["log_path"].format(namespace=params["namespace"], pod=pod_name)
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - int(params["log_tail_bytes"])))
                data = handle.read().decode("utf-8", "replace")
        except OSError as exc:
            return [], path, "cannot read %s: %s" % (path, exc.strerror or exc)
        lines = data.splitlines()
        if size > int(params["log_tail_bytes"]) and lines:
            lines = lines[1:]  # the first line is cut
        return lines, path, ""
    source = "pod log %s/%s (Kubernetes API)" % (params["namespace"], pod_name)
    try:
        text = kube.core(client).read_namespaced_pod_log(
            pod_name, params["namespace"], since_seconds=int(max(1, since_seconds)),
            limit_bytes=int(params["log_tail_bytes"]), _request_timeout=params["timeout"] * 4)
    except Exception as exc:  # ApiException, or the lab's node (no logs through the API)
        return [], source, "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])
    return str(text).splitlines(), source, ""


def _dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def wal_dir(client, params, pod):
    """The agent's WAL directory on this machine, or (None, why not): the pod's claim ->
    its PersistentVolume -> hostPath / local path, when that path exists here."""
    for volume in pod.spec.volumes or []:
        claim = volume.persistent_volume_claim
        if claim is None:
            continue
        try:
            pvc = kube.core(client).read_namespaced_persistent_volume_claim(
                claim.claim_name, params["namespace"])
            pv = kube.core(client).read_persistent_volume(pvc.spec.volume_name)
        except Exception as exc:  # 403 for the least-privilege Role: no PV reads
            return None, "PersistentVolume of %s not readable (%s)" % (claim.claim_name,
                                                                      type(exc).__name__)
        spec = pv.spec
        path = (spec.host_path and spec.host_path.path) or (spec.local and spec.local.path)
        if not path:
            return None, "PersistentVolume %s is not a hostPath/local volume" % pv.metadata.name
        wal = os.path.join(path, "wal")
        if os.path.isdir(wal):
            return wal, ""
        return None, "%s is not on this machine" % wal
    return None, "the agent pod has no PersistentVolumeClaim (its WAL is lost on restart)"


def wal_bytes(path):
    return _dir_bytes(path) if path else None
