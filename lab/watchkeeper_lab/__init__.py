"""The lab: a miniature of the platform made of the real programs, on loopback.

`Lab(dir).up()` builds what is missing (cached), starts what is not healthy and waits until
every component answers its health check; `status()` reports each; `down()` stops only the
PIDs the lab recorded. The lab writes its own inventory in the production schema, so every
runbook runs against it with `-i <lab>/inventory`.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper_lab import argocd, build, charts, controlplane, network, platform, seed, topology
from watchkeeper_lab.errors import LabError
from watchkeeper_lab.process import Record, start, stop
from watchkeeper_lab.topology import Addresses

__all__ = ["ComponentStatus", "Lab", "LabError", "LabStatus"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
OPENSEARCH_USER = "watchkeeper-lab"
#: Every program the lab runs (each pinned in versions.toml).
LAB_PROGRAMS = ["thanos", "minio", "opensearch", "prometheus", "alertmanager", "etcd",
                "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok",
                "helm"]
HEALTH_DEADLINE = 180.0
#: Workloads the node agent runs as pods, and how long `up` waits for them to be Ready.
PODS_DEADLINE = 240.0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    version: str
    pid: int | None
    healthy: bool
    detail: str = ""
    #: URLs by port name, as a script needs them: {"http": "http://ip:10902",
    #: "grpc": "ip:10901"} (gRPC endpoints are host:port, as Thanos takes them).
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabStatus:
    inventory: Path
    components: tuple[ComponentStatus, ...]
    #: Builds under way on this machine (the background builds after `up`: second versions,
    #: ArgoCD and its tools); each is used once it is built.
    building: tuple[str, ...] = ()
    #: Who syncs the platform from git: "argocd", or "lab" until ArgoCD is built.
    syncer: str = "lab"

    def to_dict(self) -> dict[str, Any]:
        return {
            "inventory": str(self.inventory),
            "components": [asdict(c) for c in self.components],
            "building": list(self.building),
            "syncer": self.syncer,
        }


@dataclass(frozen=True)
class Component:
    """One process of the lab: how to start it and how to tell it is healthy."""

    name: str
    address: str
    version: str
    argv: tuple[str, ...]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    grace_seconds: float = 30.0
    user: str | None = None
    cwd: Path | None = None
    #: Runs in the network namespace of its address (a lab host on the pod network, as root);
    #: False: in the host's namespace (the node's own processes, on the bridge's address).
    own_namespace: bool = True


def default_lab_dir() -> Path:
    if os.environ.get("WATCHKEEPER_LAB_DIR"):
        return Path(os.environ["WATCHKEEPER_LAB_DIR"])
    if os.geteuid() == 0:
        # OpenSearch runs as an unprivileged user and must reach its data: not under /root.
        return Path("/var/lib/watchkeeper/lab")
    return Path(os.path.expanduser("~/.local/share/watchkeeper/lab"))


def _http_ok(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    if url.startswith("tcp://"):  # a program without an HTTP health endpoint (Redis)
        import socket

        host, port = url[len("tcp://"):].rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return True, "accepts connections"
        except OSError as exc:
            return False, str(exc)
    context = controlplane.unverified_tls() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200, f"HTTP {response.status}"
    except OSError as exc:
        return False, str(getattr(exc, "reason", exc))


class Lab:
    """One lab directory and everything running from it."""

    def __init__(self, lab_dir: Path | None = None):
        self.dir = (lab_dir or default_lab_dir()).resolve()
        self.addresses = Addresses.for_lab(self.dir)
        #: The bridge and namespaces as root; None in reduced mode (127/8, no pod proxy).
        self.podnet = network.for_prefix(self.addresses.prefix)

    # ------------------------------------------------------------------ paths and state
    @property
    def inventory_dir(self) -> Path:
        return self.dir / "inventory"

    def _state_path(self) -> Path:
        return self.dir / "state.json"

    def _load_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_path().read_text())
            return data
        except (OSError, ValueError):
            return {"processes": {}, "versions": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path())

    def env(self) -> dict[str, str]:
        """The secret environment the lab inventory's references point at."""
        path = self.dir / "lab.env"
        if not path.exists():
            return {}
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    def _ensure_env(self) -> dict[str, str]:
        env = self.env()
        if not env:
            env = {
                "WATCHKEEPER_LAB_S3_ACCESS_KEY": "lab" + secrets.token_hex(6),
                "WATCHKEEPER_LAB_S3_SECRET_KEY": secrets.token_hex(16),
            }
            path = self.dir / "lab.env"
            path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            path.chmod(0o600)
        return env

    # ------------------------------------------------------------------ plan
    @property
    def kube_dir(self) -> Path:
        return self.dir / "kube"

    @property
    def kubeconfig(self) -> Path:
        return self.kube_dir / "kubeconfig"

    @property
    def nodeagent_dir(self) -> Path:
        return self.dir / "nodeagent"

    @property
    def chart_repo_dir(self) -> Path:
        return self.dir / "chart-repo"

    @property
    def chart_repo_url(self) -> str:
        return f"http://{self.addresses.charts}:{charts.PORT}"

    def _components(self, binaries: dict[str, Path], versions: dict[str, str]) -> list[Component]:
        """The processes the lab runs itself. The platform's workloads (receivers, query,
        store, Alertmanager, the agents) are pods: the node agent runs those."""
        a = self.addresses
        d = self.dir
        env = self.env()
        kube = self.kube_dir
        api = a.apiserver
        comps: list[Component] = [
            Component(
                "s3", f"{a.s3}:9000", versions["minio"],
                (str(binaries["minio"]), "server", str(d / "data" / "s3"), "--address",
                 f"{a.s3}:9000", "--console-address", f"{a.s3}:9001", "--quiet"),
                f"http://{a.s3}:9000/minio/health/live",
                env={"MINIO_ROOT_USER": env["WATCHKEEPER_LAB_S3_ACCESS_KEY"],
                     "MINIO_ROOT_PASSWORD": env["WATCHKEEPER_LAB_S3_SECRET_KEY"],
                     "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
            ),
            Component("etcd", f"{api}:2379", versions["etcd"],
                      tuple(controlplane.etcd_argv(binaries["etcd"], kube, api)),
                      f"http://{api}:2381/health"),
            Component("kube-apiserver", f"{api}:6443", versions["kube-apiserver"],
                      tuple(controlplane.apiserver_argv(binaries["kube-apiserver"], kube, api)),
                      f"https://{api}:6443/readyz"),
            Component("kube-controller-manager", f"{api}:10257",
                      versions["kube-controller-manager"],
                      tuple(controlplane.controller_manager_argv(
                          binaries["kube-controller-manager"], kube, api)),
                      f"https://{api}:10257/healthz"),
            Component("kube-scheduler", f"{api}:10259", versions["kube-scheduler"],
                      tuple(controlplane.scheduler_argv(binaries["kube-scheduler"], kube, api)),
                      f"https://{api}:10259/healthz"),
            # The node's own processes: in the host's namespace, on the node's address (the
            # lab bridge's, the pods' gateway).
            Component("kwok", f"{a.node}:10247", versions["kwok"],
                      tuple(controlplane.kwok_argv(binaries["kwok"], kube, a.node)),
                      f"http://{a.node}:10247/healthz", own_namespace=False),
            Component("node-agent", f"{a.node}:10248", "watchkeeper",
                      (sys.executable, "-m", "watchkeeper_lab.nodeagent",
                       "--kubeconfig", str(self.kubeconfig), "--root", str(self.nodeagent_dir),
                       "--images", str(self.nodeagent_dir / "images.json"),
                       "--healthz", f"{a.node}:10248", "--kubelet-address", f"{a.node}:10250",
                       "--pod-network", self.podnet.prefix if self.podnet else ""),
                      f"http://{a.node}:10248/healthz", own_namespace=False),
        ]
        comps.append(Component(
            "chart-repo", f"{a.charts}:{charts.PORT}", "watchkeeper",
            (sys.executable, "-m", "http.server", str(charts.PORT), "--bind", a.charts,
             "--directory", str(self.chart_repo_dir)),
            f"http://{a.charts}:{charts.PORT}/index.yaml"))
        epoch = self._canary_epoch()
        prometheus = str(binaries["prometheus"])
        for i, cluster in enumerate(topology.CLUSTERS):
            comps.append(Component(
                f"canary-{cluster}", f"{a.canary(i)}:8080", "watchkeeper",
                (sys.executable, "-m", "watchkeeper_lab.canary", "--address",
                 f"{a.canary(i)}:8080", "--cluster", cluster, "--epoch", str(epoch)),
                f"http://{a.canary(i)}:8080/-/ready",
            ))
        comps.append(Component(
            "prometheus-ha-0", f"{a.prometheus}:9090", versions["prometheus"],
            (prometheus, f"--config.file={d / 'config' / 'prometheus.yml'}",
             f"--storage.tsdb.path={d / 'data' / 'prometheus'}",
             f"--web.listen-address={a.prometheus}:9090", "--web.enable-admin-api",
             "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.retention.time=1d"),
            f"http://{a.prometheus}:9090/-/ready",
        ))
        found = argocd.programs()
        if found is not None:
            # In a namespace of their own, as ArgoCD runs in a cluster of its own, talking to
            # the API server over the pod network.
            tools = argocd.tools_dir(self.dir, found)
            argo_env = argocd.environment(self.dir, tools, self.kubeconfig)
            host = a.argocd
            comps += [
                Component("argocd-redis", f"{host}:{argocd.REDIS_PORT}", _redis_version(),
                          tuple(argocd.redis_argv(host)), f"tcp://{host}:{argocd.REDIS_PORT}"),
                Component("argocd-repo-server", f"{host}:{argocd.REPO_SERVER_PORT}",
                          versions.get("argocd", "?"),
                          tuple(argocd.repo_server_argv(tools, host)),
                          f"http://{host}:{argocd.REPO_SERVER_METRICS_PORT}/healthz",
                          env=argo_env),
                Component("argocd-application-controller",
                          f"{host}:{argocd.CONTROLLER_METRICS_PORT}", versions.get("argocd", "?"),
                          tuple(argocd.controller_argv(tools, host)),
                          f"http://{host}:{argocd.CONTROLLER_METRICS_PORT}/metrics",
                          env=argo_env),
            ]
        home = binaries["opensearch"]
        comps.append(Component(
            "opensearch", f"{a.opensearch}:9200", versions["opensearch"],
            (str(home / "bin" / "opensearch"), "-Ediscovery.type=single-node",
             f"-Enetwork.host={a.opensearch}", "-Ehttp.port=9200", "-Etransport.port=9300",
             f"-Epath.data={d / 'opensearch' / 'data'}",
             f"-Epath.logs={d / 'opensearch' / 'logs'}",
             f"-Epath.repo={d / 'opensearch' / 'snapshots'}"),
            f"http://{a.opensearch}:9200/_cluster/health?wait_for_status=yellow&timeout=1s",
            env={"OPENSEARCH_JAVA_HOME": str(build.load_specs()["opensearch"].options["java_home"]),
                 "OPENSEARCH_PATH_CONF": str(d / "opensearch" / "config"),
                 "OPENSEARCH_JAVA_OPTS": "-Xms384m -Xmx384m"},
            user=OPENSEARCH_USER if os.geteuid() == 0 else None,
            cwd=d / "opensearch",
        ))
        return comps

    def _pod_network(self, progress: Progress) -> None:
        """The bridge, after removing what a crashed lab left: namespaces no process of this
        lab's uses, and veths without a namespace (found by this lab's names only)."""
        assert self.podnet is not None
        alive = any(_record(r).alive() for r in self._all_records())
        if not alive:
            removed = self.podnet.clean_leftovers()
            if removed:
                progress(f"removed a previous run's leftovers: {', '.join(removed)}")
        self.podnet.ensure_bridge()
        progress(f"pod network: bridge {self.podnet.bridge} ({self.podnet.gateway}/24), a"
                 " network namespace per pod and lab host")

    def _canary_epoch(self) -> float:
        path = self.dir / "canary-epoch"
        if not path.exists():
            path.write_text(f"{time.time():.3f}\n")
        return float(path.read_text())

    # ------------------------------------------------------------------ configuration
    def _write_configs(self, home: Path) -> None:
        a, d, env = self.addresses, self.dir, self.env()
        config = d / "config"
        config.mkdir(parents=True, exist_ok=True)
        # The receivers' ring, the agents' and Alertmanager's configuration are ConfigMaps
        # (platform.py); the objstore configuration is the Secret `thanos-objstore`.
        del env
        rules = config / "rules.yml"
        rules.write_text(topology.RULES)
        (config / "prometheus.yml").write_text(topology.prometheus_config(a, rules))
        self._opensearch_config(home)

    def _opensearch_config(self, home: Path) -> None:
        base = self.dir / "opensearch"
        conf = base / "config"
        if not conf.exists():
            shutil.copytree(home / "config", conf)
            options = conf / "jvm.options"
            # The heap comes from OPENSEARCH_JAVA_OPTS (drop the 1g default); the GC log, heap
            # dumps and error files go under the lab, not relative to the working directory.
            lines = [line for line in options.read_text().splitlines()
                     if not line.strip().startswith(("-Xms", "-Xmx"))]
            text = "\n".join(lines) + "\n"
            text = text.replace("file=logs/", f"file={base / 'logs'}/")
            text = text.replace("HeapDumpPath=data", f"HeapDumpPath={base / 'data'}")
            text = text.replace("ErrorFile=logs/", f"ErrorFile={base / 'logs'}/")
            options.write_text(text)
        for sub in ("data", "logs", "snapshots"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = _ensure_user(OPENSEARCH_USER)
            for path in [base, *base.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
            probe = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                                    "--clear-groups", "test", "-w", str(base / "data")],
                                   capture_output=True)
            if probe.returncode != 0:
                raise LabError(
                    f"OpenSearch refuses to run as root and user {OPENSEARCH_USER} cannot reach"
                    f" {base}: put the lab where every user can traverse (--lab-dir under"
                    " /var/lib or /tmp, not under /root)")

    # ------------------------------------------------------------------ lifecycle
    def up(self, progress: Progress = lambda s: None) -> LabStatus:
        """Idempotent: build what is missing, start what is down, sync the platform's objects
        from the GitOps repository, wait until every process and pod is healthy."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        env = self._ensure_env()
        progress(f"lab directory {self.dir}, addresses {self.addresses.prefix}.0/24")
        if self.podnet is not None:
            self._pod_network(progress)
        else:
            progress("reduced mode (not root): every program on its own 127/8 address, no pod"
                     " namespaces and no pod proxy")
        binaries = build.ensure_all(progress, LAB_PROGRAMS)
        build.start_background(progress)
        if argocd.programs() is not None:
            binaries["argocd"] = argocd.programs().home  # type: ignore[union-attr]
        state = self._load_state()
        versions = self._versions(binaries, state)
        self._write_configs(binaries["opensearch"])
        controlplane.prepare(self.kube_dir)
        self._write_images(binaries)
        components = self._components(binaries, versions)
        by_name = {c.name: c for c in components}

        def run(*names: str) -> None:
            for name in names:
                self._ensure_running(by_name[name], state, progress)
                self._save_state(state)

        published = charts.publish(binaries["helm"], self.chart_repo_dir, self.chart_repo_url)
        # OpenSearch takes the longest to start: launch it first, wait for it last.
        run("opensearch", "s3", "etcd", "kube-apiserver", "chart-repo")
        self._wait_healthy([by_name["s3"], by_name["kube-apiserver"], by_name["chart-repo"]],
                           progress)
        progress(f"chart repository {self.chart_repo_url}: {len(published)} chart packages")
        contexts = {c: platform.NAMESPACES[c] for c in
                    [platform.OBSERVABILITY, *topology.CLUSTERS]}
        controlplane.write_kubeconfig(self.kube_dir, f"https://{self.addresses.apiserver}:6443",
                                      contexts)
        self._seed_buckets(env)
        self._kube_objects(env)
        run("kube-controller-manager", "kube-scheduler", "kwok", "node-agent")
        bare = self.dir / "git" / "platform.git"
        seed.gitops_repo(bare, self.addresses, self.chart_repo_url)
        if "argocd-application-controller" in by_name:
            self._argocd_sync(binaries["kubectl"], progress)
            run("argocd-redis", "argocd-repo-server", "argocd-application-controller")
            took = argocd.wait_synced(self.kubeconfig, self.git_head(), progress)
            progress(f"ArgoCD synced every Application from {bare} in {took:.1f} s")
        else:
            progress("ArgoCD is not built yet: the lab applies the platform from git itself;"
                     " the next `lab up` after the build hands it to ArgoCD")
            self.sync_from_git(binaries["kubectl"], progress, binaries["helm"])
        run(*[c.name for c in components if c.name.startswith(("canary-", "prometheus-ha"))])
        self._wait_healthy(components, progress)
        self._wait_pods(progress)
        self._wait_remote_write(progress)
        self._write_inventory(versions, binaries["kubectl"])
        self._seed_opensearch(env)
        progress(f"lab up in {time.monotonic() - started:.1f} s; inventory {self.inventory_dir}")
        return self.status()

    # ------------------------------------------------------------------ Kubernetes
    def _write_images(self, binaries: dict[str, Path]) -> None:
        """The node agent's map from image `repository:tag` to the lab's build of that
        version (a background build's path before it exists: the pull waits for it)."""
        del binaries
        self.nodeagent_dir.mkdir(parents=True, exist_ok=True)
        images = {spec.image: str(build.path_of(spec)) for spec in build.load_specs().values()
                  if spec.image}
        (self.nodeagent_dir / "images.json").write_text(json.dumps(images, indent=2))

    def git_head(self) -> str:
        """The commit on main of the lab's GitOps repository."""
        return seed.git(["rev-parse", "main"], self.dir / "git" / "platform.git").strip()

    def argocd_running(self) -> bool:
        """ArgoCD's controller is running: it, not the lab, syncs the platform from git."""
        raw = self._load_state().get("processes", {}).get("argocd-application-controller")
        return bool(raw) and _record(raw).alive()

    def _argocd_sync(self, kubectl: Path, progress: Progress) -> None:
        """Install ArgoCD's objects (its own CRDs and settings, the AppProject) and the
        platform's Applications, the bootstrap an operator applies once; ArgoCD syncs the
        rest from git."""
        found = argocd.programs()
        assert found is not None
        argocd.install(kubectl, self.kubeconfig, found)
        checkout = self._checkout()
        self._kubectl(kubectl, "apply", "--server-side", "--force-conflicts",
                      "--field-manager=lab-gitops", "-k", str(checkout / "argocd" / "applications"))
        progress("ArgoCD installed (CRDs, settings, AppProject default) with the platform's"
                 " Applications; it syncs them from git")

    def core_api(self) -> Any:
        from kubernetes import client, config

        _quiet_tls()
        return client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))

    def _kube_objects(self, env: dict[str, str]) -> None:
        """What a cluster has before ArgoCD syncs: namespaces, the node, storage, secrets."""
        from kubernetes.client.exceptions import ApiException

        create = controlplane.create
        for namespace in sorted({*platform.NAMESPACES.values(), "argocd"}):
            create(self.kubeconfig, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": namespace}})
        create(self.kubeconfig, controlplane.node_manifest(self.addresses.node))
        for pv in platform.persistent_volumes(str(self.dir / "data" / "pv")):
            create(self.kubeconfig, pv)
        objstore = topology.objstore_yaml(
            topology.BLOCKS_BUCKET, f"{self.addresses.s3}:9000",
            env["WATCHKEEPER_LAB_S3_ACCESS_KEY"], env["WATCHKEEPER_LAB_S3_SECRET_KEY"])
        secret = {"metadata": {"name": "thanos-objstore"},
                  "stringData": {"objstore.yml": objstore}}
        api = self.core_api()
        try:
            api.create_namespaced_secret("monitoring", secret)
        except ApiException as exc:
            if exc.status != 409:
                raise
            api.patch_namespaced_secret("thanos-objstore", "monitoring", secret)

    def _kubectl(self, kubectl: Path, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run([str(kubectl), f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, input=stdin)
        if proc.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def sync_from_git(self, kubectl: Path, progress: Progress = lambda s: None,
                      helm: Path | None = None) -> None:
        """What ArgoCD does for the lab: apply each cluster's tree from the GitOps repository
        (server-side apply, so a second `up` changes nothing unless git did)."""
        checkout = self._checkout()
        bare = self.dir / "git" / "platform.git"
        apply = ("apply", "--server-side", "--force-conflicts", "--field-manager=lab-gitops")
        installed = subprocess.run(
            [str(kubectl), f"--kubeconfig={self.kubeconfig}", "get", "--ignore-not-found",
             "-o", "name", "crd/applications.argoproj.io"], capture_output=True, text=True)
        if not installed.stdout.strip():  # never over ArgoCD's own, once installed
            self._kubectl(kubectl, *apply, "-k", str(checkout / "argocd" / "crd"))
            argocd.wait_established(kubectl, self.kubeconfig, "applications.argoproj.io")
        self._kubectl(kubectl, *apply, "-k", str(checkout / "argocd" / "applications"))
        helm = helm or build.ensure(build.load_specs()["helm"], progress)
        for cluster, namespace in platform.NAMESPACES.items():
            rendered = self._kubectl(kubectl, "kustomize", "--enable-helm",
                                     f"--helm-command={helm}", str(checkout / "clusters" / cluster))
            # The Application's destination namespace, as ArgoCD applies it: kubectl's own
            # kustomize leaves the objects a Helm v4 chart inflates without the Kustomization's
            # namespace, and they would land in the kubeconfig's default namespace.
            self._kubectl(kubectl, *apply, "-n", namespace, "-f", "-", stdin=rendered)
        progress(f"platform synced from {bare} into {', '.join(platform.NAMESPACES)}")

    def _checkout(self) -> Path:
        """The lab's working copy of the GitOps repository, at origin/main."""
        checkout = self.dir / "gitops"
        bare = self.dir / "git" / "platform.git"
        if not (checkout / ".git").exists():
            seed.git(["clone", "-q", str(bare), str(checkout)], self.dir)
        else:
            seed.git(["fetch", "-q", "origin"], checkout)
            seed.git(["reset", "-q", "--hard", "origin/main"], checkout)
        return checkout

    def _wait_pods(self, progress: Progress) -> None:
        """Every StatefulSet and Deployment of the platform at its replicas, all Ready."""
        from kubernetes import client, config

        _quiet_tls()
        apps: Any = client.AppsV1Api(
            config.new_client_from_config(config_file=str(self.kubeconfig)))
        deadline = time.monotonic() + PODS_DEADLINE
        announced = 0.0
        pending: list[str] = ["?"]
        while time.monotonic() < deadline:
            pending = []
            for namespace in platform.NAMESPACES.values():
                for sts in apps.list_namespaced_stateful_set(namespace).items:
                    if (sts.status.ready_replicas or 0) < (sts.spec.replicas or 0):
                        pending.append(f"{namespace}/{sts.metadata.name}")
                for dep in apps.list_namespaced_deployment(namespace).items:
                    if (dep.status.ready_replicas or 0) < (dep.spec.replicas or 0):
                        pending.append(f"{namespace}/{dep.metadata.name}")
            if not pending:
                progress("every platform pod is Ready")
                return
            if time.monotonic() - announced > 10:
                progress("waiting for pods of " + ", ".join(pending))
                announced = time.monotonic()
            time.sleep(1.0)
        raise LabError(f"not Ready after {PODS_DEADLINE:.0f} s: {', '.join(pending)}; read"
                       f" {self.dir / 'logs' / 'node-agent.log'} and {self.nodeagent_dir}/logs")

    def pod_records(self) -> dict[str, dict[str, Any]]:
        """The node agent's pods: "namespace/name" -> its record (pid, ip, ...)."""
        try:
            data: dict[str, dict[str, Any]] = json.loads(
                (self.nodeagent_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return {f"{r['namespace']}/{r['name']}": r for r in data.values()}

    def _versions(self, binaries: dict[str, Path], state: dict[str, Any]) -> dict[str, str]:
        specs = build.load_specs()
        versions: dict[str, str] = dict(state.get("versions", {}))
        for name, spec in specs.items():
            if name not in binaries:
                continue
            if spec.source == "debian":
                if name not in versions:
                    out = subprocess.run([str(binaries[name]), "--version"], capture_output=True,
                                         text=True)
                    words = (out.stdout + out.stderr).split()
                    versions[name] = words[2] if len(words) > 2 else "unknown"
            else:
                versions[name] = spec.version.lstrip("v")
        state["versions"] = versions
        return versions

    def _ensure_running(self, component: Component, state: dict[str, Any],
                        progress: Progress) -> None:
        records = state.setdefault("processes", {})
        existing = records.get(component.name)
        fingerprint = _fingerprint(component)
        if existing and _record(existing).alive():
            if existing.get("fingerprint", fingerprint) == fingerprint:
                return
            progress(f"restarting {component.name}: its binary, flags or code changed")
            stop(_record(existing), component.grace_seconds)
        host = component.address.rsplit(":", 1)[0]
        launcher: list[str] = []
        if self.podnet is not None and component.own_namespace:
            self.podnet.ensure_host(host)  # its own namespace: nothing else can hold the port
            launcher = self.podnet.exec_prefix(host)
        else:
            _check_free(component)
        argv: tuple[str, ...] = component.argv
        if component.user:
            user = pwd.getpwnam(component.user)
            argv = ("setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                    "--clear-groups", *argv)
        progress(f"starting {component.name} on {component.address}")
        record = start(argv, self.dir / "logs" / f"{component.name}.log", component.env,
                       component.cwd, prefix=launcher)
        records[component.name] = record.to_dict() | {
            "address": component.address, "health_url": component.health_url,
            "version": component.version, "binary": component.argv[0],
            "fingerprint": fingerprint,
        }

    def _wait_healthy(self, components: list[Component], progress: Progress) -> None:
        deadline = time.monotonic() + HEALTH_DEADLINE
        pending = {c.name: c for c in components}
        details: dict[str, str] = {}
        announced = 0.0
        while pending and time.monotonic() < deadline:
            for name, component in list(pending.items()):
                ok, details[name] = _http_ok(component.health_url)
                if ok:
                    del pending[name]
            if pending and time.monotonic() - announced > 10:
                progress("waiting for " + ", ".join(sorted(pending)))
                announced = time.monotonic()
            if pending:
                time.sleep(0.5)
        if pending:
            name = sorted(pending)[0]
            tail = _tail(self.dir / "logs" / f"{name}.log")
            raise LabError(
                f"not healthy after {HEALTH_DEADLINE:.0f} s: {', '.join(sorted(pending))}"
                f" ({name}: {details.get(name)}); last lines of {name}'s log:\n{tail}")

    def _wait_remote_write(self, progress: Progress, deadline_s: float = 90.0) -> None:
        """Healthy is not enough for a demo: wait until every agent has delivered samples."""
        deadline = time.monotonic() + deadline_s
        pending = list(topology.CLUSTERS)
        while pending and time.monotonic() < deadline:
            for i, cluster in enumerate(topology.CLUSTERS):
                if cluster in pending and _sent_timestamp(self.addresses.agent(i)) > 0:
                    pending.remove(cluster)
            if pending:
                time.sleep(1.0)
        if pending:
            raise LabError(f"agents of {', '.join(pending)} have not delivered a sample in"
                           f" {deadline_s:.0f} s: read {self.dir / 'logs'}/agent-*.log")
        progress("remote write flowing from every agent")

    def _observability_cluster(self, env: dict[str, str]) -> Any:
        from runbooks.inventory import ClusterConfig, SecretRef

        os.environ.update(env)
        return ClusterConfig(
            name="observability", role="observability",
            receive_http_urls=(f"http://{self.addresses.receiver(0)}:10902",),
            s3_endpoint=f"http://{self.addresses.s3}:9000",
            s3_access_key=SecretRef("env", "WATCHKEEPER_LAB_S3_ACCESS_KEY"),
            s3_secret_key=SecretRef("env", "WATCHKEEPER_LAB_S3_SECRET_KEY"),
            opensearch_url=f"http://{self.addresses.opensearch}:9200",
        )

    def _seed_buckets(self, env: dict[str, str]) -> None:
        from runbooks.clients import s3_client

        seed.buckets(s3_client(self._observability_cluster(env)),
                     [topology.BLOCKS_BUCKET, topology.BACKUPS_BUCKET])

    def _seed_opensearch(self, env: dict[str, str]) -> None:
        from runbooks.clients import opensearch_client

        seed.log_indices(opensearch_client(self._observability_cluster(env)))

    def status(self) -> LabStatus:
        """Each process the lab started and each pod the node agent runs, from the recorded
        PID and the program's own health check."""
        components: list[ComponentStatus] = []
        versions = self._load_state().get("versions", {})
        for name, raw in self._load_state().get("processes", {}).items():
            record = _record(raw)
            alive = record.alive()
            healthy, detail = _http_ok(raw["health_url"]) if alive else (False, "not running")
            scheme = raw["health_url"].split("://", 1)[0]
            components.append(ComponentStatus(name, raw["address"], raw["version"],
                                              record.pid if alive else None, healthy,
                                              "" if healthy else detail,
                                              {scheme: f"{scheme}://{raw['address']}"}))
        for name, raw in sorted(self.pod_records().items()):
            record = _record(raw)
            alive = record.alive()
            url = raw.get("ready_url", "")
            healthy, detail = (_http_ok(url) if url else (True, "")) if alive else (
                False, "not running")
            program = self._program_of(raw["argv0"])
            version = versions.get(program, program)
            if raw.get("image"):  # the version its image tag names (the lab builds several)
                version = raw["image"].split("@", 1)[0].rsplit(":", 1)[-1].lstrip("v")
            components.append(ComponentStatus(
                f"pod/{name}", raw["ip"], version,
                record.pid if alive else None, healthy, "" if healthy else detail,
                port_urls(raw["ip"], raw.get("ports", {}))))
        git = self.dir / "git" / "platform.git"
        exists = (git / "HEAD").exists()
        components.append(ComponentStatus("git", f"file://{git}", _git_version(), None, exists,
                                          "" if exists else "not created"))
        return LabStatus(self.inventory_dir, tuple(components), tuple(build.building()),
                         "argocd" if self.argocd_running() else "lab")

    @staticmethod
    def _program_of(binary: str) -> str:
        """Which program of versions.toml a pod runs (by the build's path)."""
        for spec in build.load_specs().values():
            if spec.image and str(build.path_of(spec)) == binary:
                return spec.name
        return Path(binary).name

    def _all_records(self) -> list[dict[str, Any]]:
        return [*self._load_state().get("processes", {}).values(),
                *self.pod_records().values()]

    def rss_bytes(self) -> int:
        """Total RSS of every process the lab recorded, pods included (and their children)."""
        return sum(_record(r).rss_bytes() for r in self._all_records() if _record(r).alive())

    def pids(self) -> list[int]:
        return [int(r["pid"]) for r in self._all_records()]

    def down(self, purge: bool = False, progress: Progress = lambda s: None) -> None:
        """Stop every process the lab recorded (receivers get time to flush), nothing else.
        The pods stay in the API: the next `up` restarts their processes, as a node reboot."""
        state = self._load_state()
        records = state.get("processes", {})

        def halt(name: str, raw: dict[str, Any], grace: float) -> None:
            record = _record(raw)
            if record.alive():
                began = time.monotonic()
                stop(record, grace)
                progress(f"stopped {name} (pid {record.pid}) in {time.monotonic() - began:.1f} s")

        # The node agent first (so it does not restart what we stop), then its pods: writers
        # before receivers, receivers before storage; then the control plane, storage last.
        if "node-agent" in records:
            halt("node-agent", records["node-agent"], 30.0)
        pods = self.pod_records()

        def pod_rank(name: str) -> int:
            # Every remote writer before the receivers: a Prometheus (agent or server) that
            # stops after them waits out its flush deadline (1 min) on samples it cannot send.
            for i, part in enumerate(("prometheus-agent", "/prometheus-", "thanos-query",
                                      "alertmanager", "thanos-receive", "thanos-store")):
                if part in name:
                    return i
            return 99

        for name in sorted(pods, key=pod_rank):
            grace = float(pods[name].get("grace", 60.0))
            halt(f"pod/{name}", pods[name], min(grace, 300.0))

        def rank(name: str) -> int:
            for i, prefix in enumerate(("argocd-application-controller", "argocd-repo-server",
                                        "argocd-redis", "canary-", "prometheus", "kwok",
                                        "kube-scheduler",
                                        "kube-controller-manager", "kube-apiserver", "etcd",
                                        "opensearch", "s3")):
                if name.startswith(prefix):
                    return i
            return 99

        for name in sorted(records, key=rank):
            halt(name, records[name], 60.0)
        state["processes"] = {}
        if self._state_path().exists():
            self._save_state(state)
        if self.podnet is not None:
            removed = self.podnet.teardown()
            if removed:
                progress(f"removed the pod network: {len(removed)} namespaces and links"
                         f" ({self.podnet.bridge} last)")
        if purge and self.dir.exists():
            shutil.rmtree(self.dir)

    # ------------------------------------------------------------------ inventory
    def _write_inventory(self, versions: dict[str, str], kubectl: Path | None = None) -> None:
        from watchkeeper_lab.inventory import write_lab_inventory

        write_lab_inventory(self.inventory_dir, self.addresses, versions,
                            git_url=f"file://{self.dir / 'git' / 'platform.git'}",
                            kubeconfig=self.kubeconfig, lab_dir=self.dir, kubectl=kubectl,
                            argocd=self.argocd_running())


def port_urls(ip: str, ports: dict[str, int]) -> dict[str, str]:
    """A pod's URLs by container port name: gRPC ports as host:port, the rest over HTTP."""
    return {name: f"{ip}:{port}" if "grpc" in name else f"http://{ip}:{port}"
            for name, port in sorted(ports.items())}


def _fingerprint(component: Component) -> str:
    """What the running process was started from: its argv, and for our own Python
    programs (`python -m watchkeeper_lab.X`) that module's source."""
    import hashlib

    digest = hashlib.sha256("\0".join(component.argv).encode())
    if "-m" in component.argv:
        module = component.argv[component.argv.index("-m") + 1]
        if module.startswith("watchkeeper_lab."):
            source = Path(__file__).parent / (module.rsplit(".", 1)[1] + ".py")
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _quiet_tls() -> None:
    """The lab's API server certificate is self-signed (insecure-skip-tls-verify)."""
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _check_free(component: Component) -> None:
    """Refuse to start on an address something else holds (another lab whose directory maps
    to the same block, or any other program), instead of failing later in a log file."""
    import socket

    host, port = component.address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise LabError(
                f"{component.name}: {component.address} is already in use ({exc.strerror}) by a"
                " program this lab did not start; stop it, or use another --lab-dir") from exc


def _sent_timestamp(agent_ip: str) -> float:
    """The agent's newest delivered sample time (0 when none yet or unreachable)."""
    try:
        with urllib.request.urlopen(f"http://{agent_ip}:9090/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_remote_storage_queue_highest_sent_timestamp_seconds{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _record(raw: dict[str, Any]) -> Record:
    return Record(int(raw["pid"]), int(raw["start_ticks"]), str(raw["argv0"]))


def _redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    words = [w for w in out.stdout.split() if w.startswith("v=")]
    return words[0][2:] if words else "?"


def _git_version() -> str:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True)
    return out.stdout.split()[-1] if out.returncode == 0 else "?"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
