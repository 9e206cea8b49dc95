# Copyright: watchkeeper maintainers; Apache-2.0
"""An ArgoCD Application as a change goes through it: ask for a sync at a revision, wait until
it is deployed (Synced at exactly that revision and Healthy), name what is not, its history.

ArgoCD's own status is read from the Application object (argoproj.io/v1alpha1), as
`argocd app get` shows it: `status.sync` (status, revision), `status.health`,
`status.operationState` (the last sync: phase, message, revision), `status.resources` (each
object's sync status and health) and `status.history` (the deployed revisions). A sync is
requested by writing `operation.sync` on the object, which is what `argocd app sync` sends.
"""

from __future__ import absolute_import, annotations, division, print_function

import time
from datetime import UTC

from ansible_collections.watchkeeper.platform.plugins.module_utils import kube

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
WORKLOADS = ("StatefulSet", "Deployment", "DaemonSet")


def _api(client):
    from kubernetes import client as k

    return k.CustomObjectsApi(client)


def read(client, namespace, name):
    try:
        return _api(client).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:
        raise kube.api_error(exc, "read Application %s/%s" % (namespace, name)) from exc


def source_of(app):
    source = (app.get("spec") or {}).get("source") or {}
    if not source.get("path"):
        raise kube.KubeFailure("Application %s has no spec.source.path" % (
            app["metadata"]["name"]), "only single-source Applications with a path are handled")
    return source


def summary(app):
    """{sync, revision, health, phase, operation_revision, message, auto_sync}."""
    status = app.get("status") or {}
    op = status.get("operationState") or {}
    policy = ((app.get("spec") or {}).get("syncPolicy") or {})
    return {"sync": (status.get("sync") or {}).get("status") or "Unknown",
            "revision": (status.get("sync") or {}).get("revision") or "",
            "health": (status.get("health") or {}).get("status") or "Unknown",
            "phase": op.get("phase") or "",
            "operation_revision": ((op.get("syncResult") or {}).get("revision") or
                                   ((op.get("operation") or {}).get("sync") or {}).get(
                                       "revision") or ""),
            "message": op.get("message") or "",
            "auto_sync": "automated" in policy,
            "self_heal": bool((policy.get("automated") or {}).get("selfHeal"))}


def epoch(stamp):
    """Seconds since the epoch of an RFC 3339 UTC time as ArgoCD writes it, 0 when absent."""
    from datetime import datetime

    try:
        return datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def request_sync(client, namespace, name, revision):
    """Ask ArgoCD to sync the Application at `revision`; return when it was asked (epoch)."""
    asked = time.time()
    body = {"operation": {"initiatedBy": {"username": "watchkeeper"},
                          "sync": {"revision": revision}}}
    try:
        _api(client).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                    body)
    except Exception as exc:
        raise kube.api_error(exc, "request a sync of Application %s" % name) from exc
    if not read(client, namespace, name).get("operation") and \
            not ((read(client, namespace, name).get("status") or {}).get("operationState")):
        raise kube.KubeFailure(
            "Application %s did not keep the sync request (no .operation after the patch)" %
            name, "its CRD prunes the operation field: install ArgoCD's CRD")
    return asked


def unhealthy(client, app):
    """What keeps the Application from Synced+Healthy, one line per resource: its sync status
    and health (with ArgoCD's health message), and for a workload its pods' waiting reasons
    (ImagePullBackOff, CrashLoopBackOff ...). ArgoCD 3 keeps resource health out of the
    Application object by default (controller.resource.health.persist), so a workload's pods
    are read whatever the object says."""
    lines = []
    for res in (app.get("status") or {}).get("resources") or []:
        health = (res.get("health") or {})
        sync = res.get("status") or ""
        reasons = []
        if res.get("kind") in WORKLOADS and res.get("namespace"):
            reasons = pod_reasons(client, res["kind"], res["namespace"], res["name"])
        if sync in ("Synced", "") and health.get("status") in (None, "Healthy") and \
                not reasons:
            continue
        line = "%s/%s: %s" % (res.get("kind"), res.get("name"), sync or "-")
        if health.get("status"):
            line += ", " + health["status"]
        if health.get("message"):
            line += " (%s)" % health["message"][:200]
        if reasons:
            line += "; " + "; ".join(reasons)
        lines.append(line)
    return lines


def _workload(client, kind, namespace, name):
    from kubernetes import client as k

    apps = k.AppsV1Api(client)
    read = {"StatefulSet": apps.read_namespaced_stateful_set,
            "Deployment": apps.read_namespaced_deployment,
            "DaemonSet": apps.read_namespaced_daemon_set}[kind]
    return read(name, namespace)


def _pods(client, obj):
    selector = ",".join("%s=%s" % kv for kv in sorted(
        (obj.spec.selector.match_labels or {}).items()))
    return kube.core(client).list_namespaced_pod(obj.metadata.namespace,
                                                 label_selector=selector).items


def pod_reasons(client, kind, namespace, name):
    """'pod p: container c ImagePullBackOff: <message>' for each waiting container of the
    workload's pods, 'pod p: not Ready' for the rest that are not Ready."""
    try:
        obj = _workload(client, kind, namespace, name)
        pods = _pods(client, obj)
    except Exception:  # a reason is a help, never a second failure
        return []
    found = []
    for pod in pods:
        waiting = []
        for cs in (pod.status.container_statuses or []):
            w = cs.state.waiting if cs.state else None
            if w and w.reason:
                waiting.append("container %s %s%s" % (cs.name, w.reason, (
                    ": " + w.message[:160]) if w.message else ""))
        if waiting:
            found.append("pod %s: %s" % (pod.metadata.name, ", ".join(waiting)))
        elif not kube.is_ready(pod):
            found.append("pod %s: not Ready (%s)" % (pod.metadata.name, pod.status.phase))
    return found


def wait_deployed(client, namespace, name, revision, timeout, asked=0.0, every=2.0):
    """Wait until the Application is Synced at exactly `revision`, its last sync operation
    Succeeded and it is Healthy. Returns {seconds, revision, health}. A sync operation at
    `revision` that fails ends the wait at once; a timeout fails naming what is not there."""
    started = time.monotonic()
    state = {}

    def deployed():
        app = read(client, namespace, name)
        now = summary(app)
        state.update(now, app=app)
        op = (app.get("status") or {}).get("operationState") or {}
        if now["phase"] in ("Failed", "Error") and now["operation_revision"] == revision and \
                epoch(op.get("startedAt")) >= asked - 5:
            return True, "failed"
        done = (now["sync"] == "Synced" and now["revision"] == revision and
                now["phase"] not in ("Running", "Terminating") and now["health"] == "Healthy")
        return done, "%s at %s, %s" % (now["sync"], now["revision"][:12], now["health"])

    done, detail, _ = kube.wait_for("Application %s deployed" % name, deployed, float(timeout),
                                    every=every)
    if detail == "failed":
        raise kube.KubeFailure(
            "ArgoCD's sync of %s at %s failed: %s" % (name, revision[:12], state["message"]),
            "fix the change in git (argocd app get %s shows the failing resources)" % name)
    if not done:
        problems = unhealthy(client, state["app"])
        raise kube.KubeFailure(
            "Application %s not deployed at %s within %.0f s: %s%s" % (
                name, revision[:12], float(timeout), detail,
                (": " + " | ".join(problems)) if problems else ""),
            "argocd app get %s; the pods' events (kubectl describe pod)" % name,
            unhealthy=problems)
    return {"seconds": round(time.monotonic() - started, 1), "revision": revision,
            "health": state["health"]}


#: A failed sync whose message says this is the repo-server failing to render, often
#: transiently: two renders of a Kustomization with helmCharts racing on `helm pull --untar`
#: (argoproj/argo-cd#8008, kubernetes-sigs/kustomize#5271; reposerver.parallelism.limit: 1
#: avoids it). Such a sync is requested again, a few times.
TRANSIENT = ("Failed to load target state", "failed to generate manifest")


def deploy(client, namespace, name, revision, timeout, request=True, retries=2):
    """Request a sync at `revision` (or, request=False, await the automated one) and wait
    until deployed (wait_deployed); a sync failing on a transient render error is requested
    again up to `retries` times. Returns wait_deployed's result with `attempts`."""
    attempt = 0
    while True:
        attempt += 1
        asked = request_sync(client, namespace, name, revision) if request else 0.0
        try:
            result = wait_deployed(client, namespace, name, revision, timeout, asked=asked)
            result["attempts"] = attempt
            return result
        except kube.KubeFailure as exc:
            transient = "sync of" in exc.message and any(t in exc.message for t in TRANSIENT)
            if not (request and transient and attempt <= retries):
                raise
            time.sleep(2.0 * attempt)


def sync_applied(client, namespace, name, revision, timeout, retries=2):
    """Request a sync at `revision` and wait until its operation Succeeded (the objects are
    applied; their health is not awaited), requesting again after a transient render
    failure."""
    for attempt in range(1, retries + 2):
        asked = request_sync(client, namespace, name, revision)

        def done(asked=asked):
            app = read(client, namespace, name)
            now = summary(app)
            op = (app.get("status") or {}).get("operationState") or {}
            finished = (now["operation_revision"] == revision and
                        now["phase"] in ("Succeeded", "Failed", "Error") and
                        epoch(op.get("startedAt")) >= asked - 5)
            return finished, now

        ok, now, _ = kube.wait_for("sync of %s" % name, done, float(timeout))
        if ok and now["phase"] == "Succeeded":
            return attempt
        transient = any(t in now["message"] for t in TRANSIENT)
        if not ok or not transient or attempt > retries:
            raise kube.KubeFailure("ArgoCD's sync of %s at %s did not succeed: %s %s" % (
                name, revision[:12], now["phase"] or "no operation", now["message"][:600]),
                "argocd app get %s" % name)
        time.sleep(2.0 * attempt)
    return retries + 1


def history(app, limit=20):
    """The Application's deployed revisions, newest first: id, revision, deployed_at,
    initiated_by."""
    entries = (app.get("status") or {}).get("history") or []
    out = []
    for entry in reversed(entries[-int(limit):]):
        by = entry.get("initiatedBy") or {}
        out.append({"id": entry.get("id"), "revision": entry.get("revision") or "",
                    "deployed_at": entry.get("deployedAt") or "",
                    "initiated_by": "automated" if by.get("automated") else (
                        by.get("username") or "")})
    return out


def workloads_of(app):
    """(kind, namespace, name) of the Application's workloads."""
    return [(r["kind"], r.get("namespace") or "", r["name"])
            for r in (app.get("status") or {}).get("resources") or []
            if r.get("kind") in WORKLOADS]


def release_stuck_pods(client, app):
    """After a revert of a StatefulSet's template: delete its pods that are not Ready and run
    a revision other than the StatefulSet's update revision. The StatefulSet controller never
    replaces a pod that never became Ready with the reverted template by itself (Kubernetes'
    documented "forced rollback" of a StatefulSet); the deleted pod is recreated from the
    reverted template. Returns the deleted pods' names."""
    deleted = []
    for kind, namespace, name in workloads_of(app):
        if kind != "StatefulSet":
            continue
        try:
            sts = _workload(client, kind, namespace, name)
        except Exception:
            continue
        current = sts.status.update_revision
        for pod in _pods(client, sts):
            labels = pod.metadata.labels or {}
            if current and labels.get("controller-revision-hash") not in (None, current) \
                    and not kube.is_ready(pod):
                kube.core(client).delete_namespaced_pod(pod.metadata.name, namespace)
                deleted.append(pod.metadata.name)
    return deleted
