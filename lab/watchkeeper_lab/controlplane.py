"""The lab's Kubernetes control plane: real etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (built from the registries) and KWOK for the node, on loopback.

One API server for the whole lab, with a namespace per cluster (`monitoring` for the central
observability cluster, one per workload cluster) and a kubeconfig context per cluster whose
default namespace is that cluster's. Why one and not three: the runbooks address a cluster by
its kubeconfig context and namespace (the inventory's wk_kube_context / wk_namespace), which
one server serves as well as three, at a third of the memory (an apiserver + etcd +
controller-manager is ~600 MiB) and start-up time; cross-cluster behaviour (one Lease per
cluster, RBAC confined to a namespace) holds per namespace.

Authentication is a static token file (the lab's admin token, group system:masters) plus
ServiceAccount tokens signed with the lab's key (TokenRequest). The argv builders are shared by
`Lab` (which records and supervises the processes) and `ControlPlane` (the API server alone,
for tests that need nothing else).
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from watchkeeper_lab import build
from watchkeeper_lab.errors import LabError
from watchkeeper_lab.process import Record, start, stop

Progress = build.Progress
NODE = "lab-node"
SERVICE_CIDR = "10.96.0.0/16"


def admin_token(root: Path) -> str:
    path = root / "admin.token"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def prepare(root: Path) -> None:
    """Keys and the token file (once per lab directory)."""
    root.mkdir(parents=True, exist_ok=True)
    key = root / "sa.key"
    if not key.exists():
        for cmd in (["openssl", "genrsa", "-out", str(key), "2048"],
                    ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(root / "sa.pub")]):
            subprocess.run(cmd, check=True, capture_output=True)
    (root / "tokens.csv").write_text(f"{admin_token(root)},lab-admin,lab-admin,system:masters\n")
    (root / "tokens.csv").chmod(0o600)


def etcd_argv(binary: Path, root: Path, ip: str) -> list[str]:
    return [str(binary), f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls=http://{ip}:2379", f"--advertise-client-urls=http://{ip}:2379",
            f"--listen-peer-urls=http://{ip}:2380",
            f"--initial-advertise-peer-urls=http://{ip}:2380",
            f"--initial-cluster=default=http://{ip}:2380",
            f"--listen-metrics-urls=http://{ip}:2381"]


def apiserver_argv(binary: Path, root: Path, ip: str) -> list[str]:
    return [str(binary), f"--etcd-servers=http://{ip}:2379",
            f"--bind-address={ip}", f"--advertise-address={ip}", "--secure-port=6443",
            f"--cert-dir={root / 'certs'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={root / 'sa.pub'}",
            f"--service-account-signing-key-file={root / 'sa.key'}",
            "--authorization-mode=Node,RBAC", f"--token-auth-file={root / 'tokens.csv'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # pods/log: the node's InternalIP (its Hostname address resolves nowhere) on the
            # port the node reports, where the node agent serves /containerLogs.
            "--kubelet-preferred-address-types=InternalIP"]


def controller_manager_argv(binary: Path, root: Path, ip: str) -> list[str]:
    kubeconfig = root / "kubeconfig"
    return [str(binary), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={ip}", "--secure-port=10257", "--leader-elect=false",
            f"--service-account-private-key-file={root / 'sa.key'}",
            f"--root-ca-file={root / 'certs' / 'apiserver.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--cluster-name=lab",
            # Leave a node whose heartbeat is late alone for a while: a busy 2-core machine.
            "--node-monitor-grace-period=120s"]


def scheduler_argv(binary: Path, root: Path, ip: str) -> list[str]:
    kubeconfig = root / "kubeconfig"
    return [str(binary), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={ip}", "--secure-port=10259", "--leader-elect=false"]


# KWOK keeps node `lab-node` alive: Ready, addresses, the kubelet port (10250, where the node
# agent serves pods/log), a heartbeat Lease. It gets no pod stages, so it never touches a pod:
# the node agent runs them. Written for the lab after KWOK's
# documented Stage API (kwok.sigs.k8s.io, "Stages Configuration").
KWOK_STAGES = """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
      - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
        operator: NotIn
        values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - {type: {{ .type | Quote }}, status: {{ .status | Quote }}, reason: {{ .reason | Quote }},
         message: {{ .message | Quote }}, lastHeartbeatTime: {{ $now | Quote }},
         lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ NodeName | Quote }}}
      daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
      allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
      capacity: {cpu: "16", memory: 64Gi, pods: "110"}
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: lab-node-agent
        containerRuntimeVersion: lab://processes
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-node-heartbeat
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
      - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
        operator: In
        values: ['True']
  delay: {durationMilliseconds: 20000, jitterDurationMilliseconds: 25000}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - {type: {{ .type | Quote }}, status: {{ .status | Quote }}, reason: {{ .reason | Quote }},
         message: {{ .message | Quote }}, lastHeartbeatTime: {{ $now | Quote }},
         lastTransitionTime: {{ $now | Quote }}}
      {{ end }}
      daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
"""


def kwok_argv(binary: Path, root: Path, node_ip: str) -> list[str]:
    stages = root / "kwok-stages.yaml"
    stages.write_text(KWOK_STAGES)
    return [str(binary), f"--kubeconfig={root / 'kubeconfig'}", f"--config={stages}",
            f"--manage-single-node={NODE}", f"--node-ip={node_ip}", f"--node-name={NODE}",
            "--node-lease-duration-seconds=40", f"--server-address={node_ip}:10247"]


def node_manifest(node_ip: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                 "type": "lab"},
        "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                        "lab.watchkeeper.io/runs-pods-as": "local processes (node agent)"}},
        "status": {"addresses": [{"type": "InternalIP", "address": node_ip}]}}


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the lab's self-signed serving certificates
    return context


def wait_ready(server: str, token: str, log: Path, deadline_s: float = 90.0) -> None:
    request = urllib.request.Request(f"{server}/readyz",
                                     headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2, context=unverified_tls()) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise LabError(f"kube-apiserver not ready after {deadline_s:.0f} s ({last}); see {log}")


def write_kubeconfig(root: Path, server: str, contexts: dict[str, str]) -> Path:
    """One context per cluster (`contexts`: name -> default namespace), all the lab's admin."""
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server,
                                                 "insecure-skip-tls-verify": True}}],
        "users": [{"name": "lab-admin", "user": {"token": admin_token(root)}}],
        "contexts": [{"name": name, "context": {"cluster": "lab", "user": "lab-admin",
                                                "namespace": namespace}}
                     for name, namespace in contexts.items()],
        "current-context": next(iter(contexts)),
    }
    path = root / "kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def create(kubeconfig: Path, manifest: dict[str, object]) -> None:
    """Create an object with the admin identity (idempotent: an existing one is kept)."""
    import urllib3
    from kubernetes import config, utils
    from kubernetes.utils import FailToCreateError

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        utils.create_from_dict(api, manifest)
    except FailToCreateError as exc:
        if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
            raise


@dataclass
class ControlPlane:
    """etcd and kube-apiserver alone under `root`, listening on `ip` (a loopback address:
    nothing here needs a pod network): for tests of what talks to the API only (Leases,
    server-side dry run, RBAC). The full lab runs more."""

    root: Path
    ip: str
    etcd: Record | None = None
    apiserver: Record | None = None

    @property
    def server(self) -> str:
        return f"https://{self.ip}:6443"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def start(self, contexts: dict[str, str], progress: Progress = lambda s: None) -> None:
        """Start both, wait for /readyz, write the kubeconfig, create the namespaces."""
        specs = build.load_specs()
        etcd_bin = build.ensure(specs["etcd"], progress)
        apiserver_bin = build.ensure(specs["kube-apiserver"], progress)
        prepare(self.root)
        self.etcd = start(etcd_argv(etcd_bin, self.root, self.ip), self.root / "etcd.log")
        self.apiserver = start(apiserver_argv(apiserver_bin, self.root, self.ip),
                               self.root / "kube-apiserver.log")
        wait_ready(self.server, admin_token(self.root), self.root / "kube-apiserver.log")
        write_kubeconfig(self.root, self.server, contexts)
        for namespace in sorted(set(contexts.values())):
            create(self.kubeconfig, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": namespace}})
        progress(f"kube-apiserver ready at {self.server}")

    def stop(self) -> None:
        for record in (self.apiserver, self.etcd):
            if record is not None:
                stop(record, 30.0)
