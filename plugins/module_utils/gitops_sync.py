# Copyright: watchkeeper maintainers; Apache-2.0
"""Re-sync a component from the GitOps repository: what ArgoCD's sync does, on demand.

The component is an ArgoCD Application (its source: repository, path, revision). Drift is what
`kubectl diff --server-side` reports between the rendered path (kustomize) and the live objects:
a ConfigMap edited by hand, a StatefulSet scaled by hand. Two ways to re-sync, chosen by the
inventory (wk_resync_mode):

- `argocd` (production): request a sync of the Application (its `operation` field, what
  `argocd app sync` sends) and wait until ArgoCD reports the operation Succeeded;
- `apply`: render the Application's path from the repository (wk_git_url, else the
  Application's repoURL) and server-side apply it with ArgoCD's field manager: for clusters
  whose ArgoCD cannot be asked (and the lab, which runs no ArgoCD controller).

Either way the diff is read again afterwards: an empty diff proves the re-sync.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC

from ansible_collections.watchkeeper.platform.plugins.module_utils import kube
from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring_apply import run_git

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
FIELD_MANAGER = "argocd-controller"  # ArgoCD's own server-side apply manager


def application(client, params):
    from kubernetes import client as k

    try:
        return k.CustomObjectsApi(client).get_namespaced_custom_object(
            GROUP, VERSION, params["argocd_namespace"], PLURAL, params["application"])
    except Exception as exc:
        raise kube.api_error(exc, "read Application %s/%s" % (
            params["argocd_namespace"], params["application"])) from exc


def source_of(app):
    source = (app.get("spec") or {}).get("source") or {}
    if not source.get("path"):
        raise kube.KubeFailure("Application %s has no spec.source.path" % (
            app["metadata"]["name"]), "only single-source Applications with a path are re-synced")
    return source


def _kubectl(params, args, ok_codes=(0,)):
    argv = [params.get("kubectl") or "kubectl", *list(args)]
    if params.get("kubeconfig"):
        argv.append("--kubeconfig=%s" % params["kubeconfig"])
    if params.get("context"):
        argv.append("--context=%s" % params["context"])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=float(params.get("timeout") or 60) * 6)
    except OSError as exc:
        raise kube.KubeFailure("cannot run %s: %s" % (argv[0], exc),
                               "install kubectl or set wk_kubectl to its path") from exc
    if proc.returncode not in ok_codes:
        raise kube.KubeFailure("kubectl %s failed (exit %d): %s" % (
            " ".join(args[:2]), proc.returncode, proc.stderr.strip()[:800]))
    return proc


class Checkout(object):
    """The Application's path at its revision, cloned into a temporary directory."""

    def __init__(self, params, source):
        self.url = params.get("git_url") or source.get("repoURL")
        self.revision = source.get("targetRevision") or "HEAD"
        self.path = source["path"]
        self.work = None

    def __enter__(self):
        self.work = tempfile.mkdtemp(prefix="wk-resync-")
        args = ["clone", "-q", "--depth", "1"]
        if self.revision not in ("HEAD", ""):
            args += ["--branch", self.revision]
        run_git([*args, self.url, self.work], "/")
        directory = os.path.join(self.work, self.path)
        if not os.path.isdir(directory):
            raise kube.KubeFailure("%s is not a directory in %s at %s" % (
                self.path, self.url, self.revision), "check the Application's spec.source")
        return directory

    def __exit__(self, *exc):
        shutil.rmtree(self.work, ignore_errors=True)


def drift(params, directory):
    """The unified diff (live -> git) of the rendered path, '' when in sync."""
    proc = _kubectl(params, ["diff", "--server-side", "--force-conflicts",
                             "--field-manager=%s" % FIELD_MANAGER, "-k", directory],
                    ok_codes=(0, 1))
    return proc.stdout


def changed_objects(diff_text):
    """'kind/name' of each object in a `kubectl diff` output (its file headers)."""
    found = []
    for line in diff_text.splitlines():
        if line.startswith("diff -u -N "):
            name = line.split()[-1].rsplit("/", 1)[-1]  # e.g. v1.ConfigMap.ns.name
            parts = name.split(".")
            if len(parts) >= 4:
                found.append("%s/%s" % (parts[-3], parts[-1]))
    return found


def drift_lines(diff_text, limit=8):
    """The changed lines of a `kubectl diff` (live `-`, git `+`), without its bookkeeping
    (headers, generation), for a one-line report."""
    lines = []
    for line in diff_text.splitlines():
        if line.startswith(("---", "+++")) or not line.startswith(("-", "+")):
            continue
        if line[1:].strip().startswith("generation:"):
            continue
        lines.append(line[0] + " " + line[1:].strip())
    more = " (+%d more lines)" % (len(lines) - limit) if len(lines) > limit else ""
    return " | ".join(lines[:limit]) + more


def request_sync(client, params, app):
    """Ask ArgoCD to sync the Application; wait for the operation's outcome."""
    from kubernetes import client as k

    api = k.CustomObjectsApi(client)
    revision = source_of(app).get("targetRevision") or "HEAD"
    asked = time.time()
    body = {"operation": {"initiatedBy": {"username": "watchkeeper"},
                          "sync": {"revision": revision}}}
    try:
        api.patch_namespaced_custom_object(GROUP, VERSION, params["argocd_namespace"], PLURAL,
                                           params["application"], body)
    except Exception as exc:
        raise kube.api_error(exc,
                             "request a sync of Application %s" % params["application"]) from exc
    if not application(client, params).get("operation"):
        raise kube.KubeFailure(
            "Application %s did not keep the sync request (no .operation after the patch)" %
            params["application"], "its CRD prunes the operation field: install ArgoCD's CRD")

    def done():
        current = application(client, params)
        state = (current.get("status") or {}).get("operationState") or {}
        started = state.get("startedAt") or ""
        if state.get("phase") in ("Succeeded", "Failed", "Error") and \
                _epoch(started) >= asked - 5:
            return True, state.get("phase")
        return False, state.get("phase") or "no operation state"

    ok, phase, _ = kube.wait_for("ArgoCD sync of %s" % params["application"], done,
                                 float(params["sync_timeout"]), every=2.0)
    if not ok or phase != "Succeeded":
        raise kube.KubeFailure(
            "ArgoCD did not complete the sync of %s within %.0f s (last: %s)" % (
                params["application"], float(params["sync_timeout"]), phase),
            "is the ArgoCD application controller running? Without one, set wk_resync_mode:"
            " apply")


def _epoch(stamp):
    """Seconds since the epoch of an RFC 3339 UTC time as ArgoCD writes it, 0 when absent."""
    from datetime import datetime

    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def apply(params, directory):
    _kubectl(params, ["apply", "--server-side", "--force-conflicts",
                      "--field-manager=%s" % FIELD_MANAGER, "-k", directory])


def wait_workloads(client, params, objects):
    """StatefulSets and Deployments the re-sync touched: every replica Ready."""
    from kubernetes import client as k

    apps = k.AppsV1Api(client)
    names = [o.split("/", 1) for o in objects if o.split("/", 1)[0] in
             ("StatefulSet", "Deployment")]

    def ready():
        pending = []
        for kind, name in names:
            read = (apps.read_namespaced_stateful_set if kind == "StatefulSet"
                    else apps.read_namespaced_deployment)
            obj = read(name, params["namespace"])
            want = obj.spec.replicas or 0
            if (obj.status.ready_replicas or 0) < want or \
                    (obj.status.updated_replicas or 0) < want:
                pending.append("%s/%s %d/%d Ready" % (kind, name, obj.status.ready_replicas or 0,
                                                      want))
        return not pending, "; ".join(pending)

    ok, detail, _ = kube.wait_for("re-synced workloads Ready", ready,
                                  float(params["ready_timeout"]), every=2.0)
    if not ok:
        raise kube.KubeFailure("after the re-sync: %s" % detail,
                               "read the pods' events and logs (watchkeeper logs ...)")


def resync(client, params, check_mode):
    """{changed, drifted, objects, drift (the diff), mode, source}; in check mode nothing
    more than the diff."""
    app = application(client, params)
    source = source_of(app)
    with Checkout(params, source) as directory:
        before = drift(params, directory)
        objects = changed_objects(before)
        result = {"changed": False, "drifted": bool(before.strip()), "objects": objects,
                  "drift": before, "mode": params["mode"],
                  "source": "%s %s@%s" % (params.get("git_url") or source.get("repoURL"),
                                          source["path"], source.get("targetRevision") or "HEAD")}
        if not result["drifted"] or check_mode:
            result["changed"] = result["drifted"]
            return result
        if params["mode"] == "argocd":
            request_sync(client, params, app)
        else:
            apply(params, directory)
        wait_workloads(client, params, objects)
        after = drift(params, directory)
        if after.strip():
            raise kube.KubeFailure("still drifted from git after the re-sync: %s" % (
                ", ".join(changed_objects(after)) or after[:400]),
                "another controller or a person keeps changing it: find the field manager"
                " (kubectl get -o yaml --show-managed-fields)")
        result["changed"] = True
        return result
