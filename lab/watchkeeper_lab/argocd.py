"""ArgoCD in the lab: the real argocd-application-controller and argocd-repo-server (v3.6,
built from the module proxy; versions.toml) with Debian's redis-server, syncing the platform's
Applications from the lab's git repository into the lab's API server.

Run as upstream runs them outside a cluster (its Procfile): ARGOCD_FAKE_IN_CLUSTER makes the
in-cluster destination `https://kubernetes.default.svc` use KUBECONFIG, so no cluster Secret
is needed; the repo-server calls git, helm, kustomize and its two wrapper scripts from PATH.
The lab runs no argocd-server (no UI, no API): runbooks and tests read and write the
Application objects, as the controller does.

Until ArgoCD is built (it builds in the background after the first `lab up`, ~11 CPU-minutes),
the lab applies the same trees itself; the next `up` after the build hands them to ArgoCD.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchkeeper_lab import build
from watchkeeper_lab.errors import LabError

NAMESPACE = "argocd"
REDIS_PORT = 6379
REPO_SERVER_PORT = 8081
CONTROLLER_METRICS_PORT = 8082
REPO_SERVER_METRICS_PORT = 8084
#: How often the controller compares each Application with git (upstream's default is 120 s
#: plus up to 60 s of jitter; the lab's repository is local, so it polls more often).
RECONCILIATION_S = 20
SYNC_DEADLINE = 180.0
GROUP, VERSION = "argoproj.io", "v1alpha1"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Programs:
    home: Path  # the build: bin/argocd, manifests/, hack/
    helm: Path
    kustomize: Path


def programs() -> Programs | None:
    """ArgoCD and the tools its repo-server calls, when all are built; else None."""
    specs = build.load_specs()
    paths = [build.path_of(specs[name]) for name in ("argocd", "helm", "kustomize")]
    if not all(path.exists() for path in paths):
        return None
    return Programs(*paths)


def tools_dir(lab_dir: Path, found: Programs) -> Path:
    """A directory for the front of PATH: the components under the names that select them in
    the multi-call binary, helm, kustomize and the repo-server's wrapper scripts."""
    tools = lab_dir / "argocd" / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    links = {
        "argocd-application-controller": found.home / "bin" / "argocd",
        "argocd-repo-server": found.home / "bin" / "argocd",
        "helm": found.helm, "kustomize": found.kustomize,
    }
    # Copies, executable: Go module files carry no mode bits (the repo-server's exec of a
    # non-executable wrapper fails every manifest generation with "permission denied").
    for script in ("git-verify-wrapper.sh", "gpg-wrapper.sh"):
        copy = tools / script
        if copy.is_symlink():
            copy.unlink()
        copy.write_bytes((found.home / "hack" / script).read_bytes())
        copy.chmod(0o755)
    for name, target in links.items():
        link = tools / name
        if link.is_symlink() or link.exists():
            if link.resolve() == target.resolve():
                continue
            link.unlink()
        link.symlink_to(target)
    return tools


def environment(lab_dir: Path, tools: Path, kubeconfig: Path) -> dict[str, str]:
    home = lab_dir / "argocd" / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {"ARGOCD_FAKE_IN_CLUSTER": "true", "ARGOCD_GPG_ENABLED": "false",
            "KUBECONFIG": str(kubeconfig), "HOME": str(home),
            "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin"}


def redis_argv(host: str) -> list[str]:
    return ["redis-server", "--bind", host, "--port", str(REDIS_PORT), "--save", "",
            "--appendonly", "no", "--protected-mode", "no"]


def repo_server_argv(tools: Path, host: str) -> list[str]:
    # An empty --client-ca-path: without it the repo-server refuses --disable-tls.
    return [str(tools / "argocd-repo-server"), "--address", host, "--port",
            str(REPO_SERVER_PORT), "--metrics-address", host, "--metrics-port",
            str(REPO_SERVER_METRICS_PORT), "--redis", f"{host}:{REDIS_PORT}",
            "--disable-tls", "--client-ca-path=", "--loglevel", "info",
            # How long a branch's resolved commit is reused (upstream: 3 m, with webhooks to
            # cut it short); the lab's git is local and has no webhook, so it asks it often.
            "--revision-cache-expiration", f"{RECONCILIATION_S // 2}s",
            # One manifest generation at a time: two renders of a Kustomization with
            # helmCharts race on `helm pull --untar` into the shared checkout ("already
            # exists"; argoproj/argo-cd#8008). Upstream's reposerver.parallelism.limit.
            "--parallelismlimit", "1"]


def controller_argv(tools: Path, host: str) -> list[str]:
    return [str(tools / "argocd-application-controller"), "--namespace", NAMESPACE,
            "--redis", f"{host}:{REDIS_PORT}", "--repo-server", f"{host}:{REPO_SERVER_PORT}",
            "--repo-server-plaintext", "--metrics-port", str(CONTROLLER_METRICS_PORT),
            # Upstream's Deployment feeds these from argocd-cm's timeout.reconciliation.
            "--app-resync", str(RECONCILIATION_S), "--app-resync-jitter", "0",
            "--loglevel", "info"]


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", *args], input=stdin,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"kubectl {' '.join(args[:4])} failed: {proc.stderr.strip()}")
    return proc.stdout


def wait_established(kubectl: Path, kubeconfig: Path, *crds: str,
                     deadline_s: float = 60.0) -> None:
    """Wait until each CRD is Established. Polled, not `kubectl wait`: that fails at once on
    a CRD whose status has no conditions yet (just created)."""
    deadline = time.monotonic() + deadline_s
    waiting = list(crds)
    def established(crd: str) -> bool:
        status = json.loads(_kubectl(kubectl, kubeconfig, "get", f"crd/{crd}", "-o", "json")
                            ).get("status") or {}
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in status.get("conditions") or [])

    while waiting:
        waiting = [crd for crd in waiting if not established(crd)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise LabError(f"CRD(s) {', '.join(waiting)} not Established in {deadline_s:.0f} s;"
                           " read the lab's logs/kube-apiserver.log")
        time.sleep(0.5)


def install(kubectl: Path, kubeconfig: Path, found: Programs) -> None:
    """What an ArgoCD install puts in the cluster, minus its Deployments (the lab runs the
    processes): the CRDs, argocd-cm and argocd-secret from the same release, and the
    AppProject `default` (argocd-server creates it; the lab runs none)."""
    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager=lab-argocd-install")
    # The CRD files only: the directory also holds a kustomization.yaml, not an object.
    crds = sorted((found.home / "manifests" / "crds").glob("*-crd.yaml"))
    if not crds:
        raise LabError(f"no ArgoCD CRDs under {found.home / 'manifests' / 'crds'}; rebuild"
                       " with `python -m watchkeeper_lab.build argocd`")
    _kubectl(kubectl, kubeconfig, *apply, *(arg for crd in crds for arg in ("-f", str(crd))))
    wait_established(kubectl, kubeconfig, "applications.argoproj.io", "appprojects.argoproj.io")
    config = found.home / "manifests" / "base" / "config"
    for name in ("argocd-cm.yaml", "argocd-secret.yaml"):
        _kubectl(kubectl, kubeconfig, *apply, "-n", NAMESPACE, "-f", str(config / name))
    settings = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": NAMESPACE},
                "data": {"timeout.reconciliation": f"{RECONCILIATION_S}s",
                         "timeout.reconciliation.jitter": "0s",
                         # The platform's kustomizations inflate our Helm charts.
                         "kustomize.buildOptions": "--enable-helm"}}
    project = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AppProject",
               "metadata": {"name": "default", "namespace": NAMESPACE},
               "spec": {"sourceRepos": ["*"],
                        "destinations": [{"server": "*", "namespace": "*"}],
                        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}
    for obj in (settings, project):
        _kubectl(kubectl, kubeconfig, "apply", "--server-side", "--force-conflicts",
                 "--field-manager=lab-argocd-settings", "-f", "-", stdin=json.dumps(obj))


def custom_api(kubeconfig: Path) -> Any:
    import urllib3
    from kubernetes import client, config

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))


def applications(kubeconfig: Path) -> list[dict[str, Any]]:
    listed = custom_api(kubeconfig).list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "applications")
    items: list[dict[str, Any]] = listed.get("items", [])
    return items


def summary(app: dict[str, Any]) -> dict[str, str]:
    status = app.get("status") or {}
    operation = (status.get("operationState") or {})
    return {"sync": (status.get("sync") or {}).get("status", ""),
            "revision": (status.get("sync") or {}).get("revision", ""),
            "health": (status.get("health") or {}).get("status", ""),
            "operation": operation.get("phase", ""),
            "message": operation.get("message", "")}


def request_sync(kubeconfig: Path, name: str, revision: str) -> None:
    """What `argocd app sync NAME --revision REV` sends: the Application's `operation`."""
    custom_api(kubeconfig).patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "applications", name,
        {"operation": {"initiatedBy": {"username": "watchkeeper-lab"},
                       "sync": {"revision": revision, "prune": True}}})


def wait_synced(kubeconfig: Path, revision: str, progress: Progress,
                deadline_s: float = SYNC_DEADLINE) -> float:
    """Every Application Synced at `revision` (git's HEAD); seconds it took. One that ArgoCD
    compared at `revision` and found OutOfSync, with no sync under way (drift made by hand:
    automated sync without self-heal leaves it), is synced, as `argocd app sync` would: a
    second `up` puts the platform back to git. Health is judged after by the pods themselves
    (a StatefulSet is Progressing until its pods are Ready)."""
    started = time.monotonic()
    deadline = started + deadline_s
    announced = started
    pending: dict[str, dict[str, str]] = {"?": {}}
    requested: set[str] = set()
    while time.monotonic() < deadline:
        pending = {}
        for app in applications(kubeconfig):
            state = summary(app)
            name = app["metadata"]["name"]
            if state["sync"] != "Synced" or state["revision"] != revision:
                pending[name] = state
            if (state["sync"] == "OutOfSync" and state["revision"] == revision
                    and state["operation"] != "Running" and not app.get("operation")
                    and name not in requested):
                request_sync(kubeconfig, name, revision)
                requested.add(name)
                progress(f"ArgoCD: {name} OutOfSync at {revision[:8]}: requesting a sync")
        if not pending:
            return time.monotonic() - started
        if time.monotonic() - announced > 15:
            progress(f"ArgoCD: waiting for {len(pending)} Application(s) to sync {revision[:8]}:"
                     f" {', '.join(sorted(pending)[:4])}")
            announced = time.monotonic()
        time.sleep(1.0)
    name, state = sorted(pending.items())[0]
    raise LabError(f"ArgoCD did not sync {', '.join(sorted(pending))} to {revision[:8]} in"
                   f" {deadline_s:.0f} s ({name}: {state}); read the lab's"
                   " logs/argocd-application-controller.log and logs/argocd-repo-server.log")
