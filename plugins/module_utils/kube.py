# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Kubernetes for the collection's modules: the one place a module builds a kubernetes client,
the connection options every Kubernetes module shares, and the reads the runbooks repeat
(pods of a workload and whether they are Ready, a pod's metrics through the API server's pod
proxy, a StatefulSet's scale).

(The runbooks' Python side builds its clients in runbooks/clients.py; modules run in Ansible's
module runtime and receive the kubeconfig and context as options, so they build theirs here.)
"""

from __future__ import absolute_import, annotations, division, print_function

import time

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

#: Connection options of every Kubernetes module (compose with each module's own spec).
CONNECTION_SPEC = dict(
    kubeconfig=dict(type="str"),
    context=dict(type="str"),
    namespace=dict(type="str", default="monitoring"),
)


class KubeFailure(ModuleFailure):
    """A failed Kubernetes operation."""


def connect(params):
    """A kubernetes ApiClient for the module's kubeconfig and context."""
    try:
        import urllib3
        from kubernetes import config
    except ImportError as exc:
        raise KubeFailure("the kubernetes client is not importable: %s" % exc,
                          "install watchkeeper with its dependencies") from exc
    try:
        client = config.new_client_from_config(config_file=params.get("kubeconfig") or None,
                                               context=params.get("context") or None)
    except Exception as exc:  # ConfigException, missing file, unknown context
        raise KubeFailure("cannot load kubeconfig %s context %s: %s" % (
            params.get("kubeconfig") or "(default)", params.get("context") or "(current)", exc),
            "set wk_kubeconfig / wk_kube_context in the inventory") from exc
    if not client.configuration.verify_ssl:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return client


def api_error(exc, what):
    """A KubeFailure for an ApiException (or a connection error) while doing `what`."""
    status = getattr(exc, "status", None)
    if status == 403:
        return KubeFailure("%s: forbidden (403)" % what,
                           "the identity lacks RBAC for it; see the watchkeeper Role")
    if status == 404:
        return KubeFailure("%s: not found (404)" % what,
                           "check wk_namespace and the object's name in the inventory")
    if status is None:
        return KubeFailure("%s: API server unreachable: %s" % (what, exc),
                           "check wk_kubeconfig / wk_kube_context and the network")
    return KubeFailure("%s: HTTP %s %s" % (what, status, getattr(exc, "reason", "")))


def core(client):
    from kubernetes import client as k

    return k.CoreV1Api(client)


def apps(client):
    from kubernetes import client as k

    return k.AppsV1Api(client)


def is_ready(pod):
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ordinal(name):
    """A StatefulSet pod's ordinal (-1 when the name has none)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def statefulset_pods(client, namespace, statefulset):
    """The StatefulSet's pods by ordinal (from its own selector)."""
    from kubernetes.client.exceptions import ApiException

    try:
        sts = apps(client).read_namespaced_stateful_set(statefulset, namespace)
        labels = sts.spec.selector.match_labels or {}
        selector = ",".join("%s=%s" % kv for kv in sorted(labels.items()))
        pods = core(client).list_namespaced_pod(namespace, label_selector=selector).items
    except ApiException as exc:
        raise api_error(exc, "read StatefulSet %s/%s" % (namespace, statefulset)) from exc
    except OSError as exc:
        raise api_error(exc, "read StatefulSet %s/%s" % (namespace, statefulset)) from exc
    # Its own pods only: another StatefulSet's selector may be a superset (agent shards).
    pods = [p for p in pods if p.metadata.name.startswith(statefulset + "-") and all(
        o.name == statefulset for o in p.metadata.owner_references or []
        if o.kind == "StatefulSet")]
    return sts, sorted(pods, key=lambda p: ordinal(p.metadata.name))


def proxy_get(client, namespace, pod, port, path, timeout=10):
    """GET a pod's HTTP endpoint through the API server's pod proxy (text)."""
    response = core(client).connect_get_namespaced_pod_proxy_with_path(
        "%s:%s" % (pod, port), namespace, path.lstrip("/"), _request_timeout=timeout,
        _preload_content=False)
    return response.data.decode("utf-8", "replace")


def scale_statefulset(client, namespace, name, replicas, dry_run=False):
    body = {"spec": {"replicas": int(replicas)}}
    kwargs = {"dry_run": "All"} if dry_run else {}
    return apps(client).patch_namespaced_stateful_set_scale(name, namespace, body, **kwargs)


def wait_for(what, check, timeout, every=2.0):
    """Poll `check()` (returns (done, detail)) until done or `timeout` seconds; returns
    (done, detail, seconds waited)."""
    started = time.monotonic()
    detail = None
    while True:
        done, detail = check()
        waited = time.monotonic() - started
        if done or waited >= timeout:
            return done, detail, waited
        time.sleep(every)
