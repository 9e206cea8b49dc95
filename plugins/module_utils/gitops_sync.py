# Copyright: watchkeeper maintainers; Apache-2.0
"""Re-sync a component from the GitOps repository: what ArgoCD's sync does, on demand.

The component is an ArgoCD Application (its source: repository, path, revision). Drift is what
`kubectl diff --server-side` reports between the rendered path and the live objects (rendered
as ArgoCD's repo-server does with `kustomize.buildOptions: --enable-helm`: `kubectl kustomize
--enable-helm`, so a Kustomization that inflates a Helm chart renders the chart):
a ConfigMap edited by hand, a StatefulSet scaled by hand. Two ways to re-sync, chosen by the
inventory (wk_resync_mode):

- `argocd` (production): request a sync of the Application (its `operation` field, what
  `argocd app sync` sends) and wait until ArgoCD reports the operation Succeeded;
- `apply`: render the Application's path from the repository (wk_git_url, else the
  Application's repoURL) and server-side apply it with ArgoCD's field manager: for clusters
  whose ArgoCD cannot be asked.

Either way the diff is read again afterwards: an empty diff proves the re-sync.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import shutil
import subprocess
import tempfile

from ansible_collections.watchkeeper.platform.plugins.module_utils import argocd_app, kube
from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring_apply import run_git

FIELD_MANAGER = "argocd-controller"  # ArgoCD's own server-side apply manager


def application(client, params):
    return argocd_app.read(client, params["argocd_namespace"], params["application"])


source_of = argocd_app.source_of


def _kubectl(params, args, ok_codes=(0,), stdin=None):
    argv = [params.get("kubectl") or "kubectl", *list(args)]
    if params.get("kubeconfig"):
        argv.append("--kubeconfig=%s" % params["kubeconfig"])
    if params.get("context"):
        argv.append("--context=%s" % params["context"])
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=stdin,
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


def render(params, directory):
    """The objects of the Application's path, as YAML: the Kustomization built with its Helm
    charts inflated (the chart repository must be reachable from here, as from the
    repo-server)."""
    helm = params.get("helm") or "helm"
    if os.sep not in helm and shutil.which(helm) is None:
        helm = None  # no helm: a path without helmCharts still renders
    args = ["kustomize", directory]
    if helm:
        args[1:1] = ["--enable-helm", "--helm-command=%s" % helm]
    rendered = _kubectl(params, args).stdout
    if not rendered.strip():
        raise kube.KubeFailure("%s renders no objects" % directory,
                               "check the Application's spec.source.path")
    return rendered


#: How ArgoCD marks the objects an Application owns (argocd-cm
#: `application.resourceTrackingMethod`; `annotation` is the default from ArgoCD 3.0).
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
TRACKING_LABEL = "app.kubernetes.io/instance"


def track(rendered, app, method="annotation"):
    """The rendered objects with the Application's tracking mark, as ArgoCD writes it when it
    applies them (`<app>:<group>/<kind>:<namespace>/<name>`). Without it a diff reports the
    mark as drift on every object, and an apply under ArgoCD's field manager would remove it,
    so ArgoCD would no longer count the objects as the Application's."""
    import yaml

    name = app["metadata"]["name"]
    default_ns = ((app.get("spec") or {}).get("destination") or {}).get("namespace") or ""
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "annotation" in method:
            group = doc.get("apiVersion", "").rpartition("/")[0]
            meta.setdefault("annotations", {})[TRACKING_ANNOTATION] = "%s:%s/%s:%s/%s" % (
                name, group, doc.get("kind", ""), meta.get("namespace") or default_ns,
                meta.get("name", ""))
        if "label" in method:
            meta.setdefault("labels", {})[TRACKING_LABEL] = name
    return yaml.safe_dump_all(docs, sort_keys=False)


def drift(params, rendered):
    """The unified diff (live -> git) of the rendered objects, '' when in sync."""
    proc = _kubectl(params, ["diff", "--server-side", "--force-conflicts",
                             "--field-manager=%s" % FIELD_MANAGER, "-f", "-"],
                    ok_codes=(0, 1), stdin=rendered)
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
    """Ask ArgoCD to sync the Application at its target revision; wait for the operation's
    outcome."""
    revision = source_of(app).get("targetRevision") or "HEAD"
    asked = argocd_app.request_sync(client, params["argocd_namespace"], params["application"],
                                    revision)

    def done():
        current = application(client, params)
        state = (current.get("status") or {}).get("operationState") or {}
        if state.get("phase") in ("Succeeded", "Failed", "Error") and \
                argocd_app.epoch(state.get("startedAt")) >= asked - 5:
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


def apply(params, rendered):
    _kubectl(params, ["apply", "--server-side", "--force-conflicts",
                      "--field-manager=%s" % FIELD_MANAGER, "-f", "-"], stdin=rendered)


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
        rendered = track(render(params, directory), app,
                         params.get("tracking_method") or "annotation")
        before = drift(params, rendered)
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
            apply(params, rendered)
        wait_workloads(client, params, objects)
        after = drift(params, rendered)
        if after.strip():
            raise kube.KubeFailure("still drifted from git after the re-sync: %s" % (
                ", ".join(changed_objects(after)) or after[:400]),
                "another controller or a person keeps changing it: find the field manager"
                " (kubectl get -o yaml --show-managed-fields)")
        result["changed"] = True
        return result
