"""A real Kubernetes API server (etcd + kube-apiserver, built from the registries) on loopback.

The first piece of the lab's Kubernetes part: enough for what talks to the API alone (Leases,
server-side dry run, RBAC). Authentication is a static token file: an admin token for the lab,
and ServiceAccount tokens through the TokenRequest API (signed with the lab's key).
"""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from runbooks.lab import build
from runbooks.lab.errors import LabError
from runbooks.lab.process import Record, start, stop

Progress = build.Progress


@dataclass
class ControlPlane:
    """etcd and kube-apiserver under `root`, listening on `ip`."""

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

    def _token(self) -> str:
        path = self.root / "admin.token"
        if not path.exists():
            path.write_text(secrets.token_hex(16))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self, contexts: dict[str, str], progress: Progress = lambda s: None) -> None:
        """Start both, wait for /readyz, write a kubeconfig with one context per cluster
        (`contexts` maps context name to its default namespace) and create the namespaces."""
        specs = build.load_specs()
        etcd_bin = build.ensure(specs["etcd"], progress)
        apiserver_bin = build.ensure(specs["kube-apiserver"], progress)
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "sa.key"
        if not key.exists():
            for cmd in (["openssl", "genrsa", "-out", str(key), "2048"],
                        ["openssl", "rsa", "-in", str(key), "-pubout", "-out",
                         str(self.root / "sa.pub")]):
                subprocess.run(cmd, check=True, capture_output=True)
        (self.root / "tokens.csv").write_text(
            f"{self._token()},lab-admin,lab-admin,system:masters\n")
        self.etcd = start([
            str(etcd_bin), f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls=http://{self.ip}:2379",
            f"--advertise-client-urls=http://{self.ip}:2379",
            f"--listen-peer-urls=http://{self.ip}:2380",
            f"--initial-advertise-peer-urls=http://{self.ip}:2380",
            f"--initial-cluster=default=http://{self.ip}:2380",
            f"--listen-metrics-urls=http://{self.ip}:2381",
        ], self.root / "etcd.log")
        self.apiserver = start([
            str(apiserver_bin), f"--etcd-servers=http://{self.ip}:2379",
            f"--bind-address={self.ip}", f"--advertise-address={self.ip}", "--secure-port=6443",
            f"--cert-dir={self.root / 'certs'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={self.root / 'sa.pub'}",
            f"--service-account-signing-key-file={key}",
            "--authorization-mode=Node,RBAC", f"--token-auth-file={self.root / 'tokens.csv'}",
            "--service-cluster-ip-range=10.96.0.0/16",
        ], self.root / "kube-apiserver.log")
        self._wait_ready()
        self._write_kubeconfig(contexts)
        for namespace in sorted(set(contexts.values())):
            self.kubectl_apply({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": namespace}})
        progress(f"kube-apiserver ready at {self.server}")

    def _wait_ready(self, deadline_s: float = 90.0) -> None:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the lab's self-signed serving certificate
        request = urllib.request.Request(f"{self.server}/readyz",
                                         headers={"Authorization": f"Bearer {self._token()}"})
        deadline = time.monotonic() + deadline_s
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise LabError(f"kube-apiserver not ready after {deadline_s:.0f} s ({last});"
                       f" see {self.root / 'kube-apiserver.log'}")

    def _write_kubeconfig(self, contexts: dict[str, str]) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "lab", "cluster": {
                "server": self.server, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "lab-admin", "user": {"token": self._token()}}],
            "contexts": [{"name": name, "context": {"cluster": "lab", "user": "lab-admin",
                                                    "namespace": namespace}}
                         for name, namespace in contexts.items()],
            "current-context": next(iter(contexts)),
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def kubectl_apply(self, manifest: dict[str, object]) -> None:
        """Create an object with the admin identity (idempotent)."""
        from kubernetes import config, utils
        from kubernetes.utils import FailToCreateError

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        try:
            utils.create_from_dict(api, manifest)
        except FailToCreateError as exc:
            if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                raise

    def stop(self) -> None:
        for record in (self.apiserver, self.etcd):
            if record is not None:
                stop(record, 30.0)
