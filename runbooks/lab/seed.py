"""What the lab puts into its servers after they start: S3 buckets with versioning, sample log
indices in OpenSearch, and the GitOps repository. Each step is idempotent."""

from __future__ import annotations

import random
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbooks.lab.errors import LabError
from runbooks.lab.topology import Addresses, hashring_bytes

LOG_DAYS = 5
DOCS_PER_DAY = 40


def buckets(s3: Any, names: list[str]) -> None:
    """Create the buckets (if missing) and turn versioning on."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for name in names:
        if name not in existing:
            s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        status = s3.get_bucket_versioning(Bucket=name).get("Status")
        if status != "Enabled":
            raise LabError(f"bucket {name}: versioning is {status!r} after enabling it")


def log_index_names(today: datetime) -> list[str]:
    return [f"logs-{(today - timedelta(days=d)):%Y.%m.%d}" for d in range(LOG_DAYS)]


def log_indices(opensearch: Any, today: datetime | None = None) -> list[str]:
    """Daily indices logs-YYYY.MM.DD for the last LOG_DAYS days, DOCS_PER_DAY documents each."""
    today = today or datetime.now(UTC)
    names = log_index_names(today)
    rng = random.Random(42)
    for offset, name in enumerate(names):
        if opensearch.indices.exists(index=name):
            continue
        opensearch.indices.create(index=name, body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        })
        day = today - timedelta(days=offset)
        actions: list[dict[str, Any]] = []
        for i in range(DOCS_PER_DAY):
            actions.append({"index": {"_index": name}})
            actions.append({
                "@timestamp": (day.replace(hour=0, minute=0, second=0)
                               + timedelta(minutes=30 * i)).isoformat(),
                "cluster": rng.choice(["k8s-cluster-01", "k8s-cluster-02"]),
                "level": rng.choice(["info", "info", "info", "warn", "error"]),
                "message": f"lab log line {i} of {name}",
            })
        result = opensearch.bulk(body=actions, refresh=True)
        if result.get("errors"):
            raise LabError(f"bulk indexing into {name} reported errors")
    return names


def _git(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "watchkeeper lab",
                               "GIT_AUTHOR_EMAIL": "lab@watchkeeper.invalid",
                               "GIT_COMMITTER_NAME": "watchkeeper lab",
                               "GIT_COMMITTER_EMAIL": "lab@watchkeeper.invalid",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    if proc.returncode != 0:
        raise LabError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def gitops_repo(bare: Path, addresses: Addresses) -> None:
    """A bare repository holding the platform's Kustomize + Helm configuration."""
    if (bare / "HEAD").exists():
        return
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git(["init", "--bare", "--initial-branch=main", str(bare)], bare.parent)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        _git(["clone", "-q", str(bare), str(work)], Path(tmp))
        for path, text in _platform_tree(addresses).items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        _git(["add", "-A"], work)
        _git(["commit", "-q", "-m", "Platform configuration for the watchkeeper lab"], work)
        _git(["push", "-q", "origin", "main"], work)


# What the runbooks need in the platform's namespace, and nothing more: read pods and their
# proxied metrics, scale the receivers, patch the hashring, hold the per-cluster Lease.
WATCHKEEPER_RBAC = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: watchkeeper
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: watchkeeper
rules:
  - apiGroups: [""]
    resources: [pods, services, endpoints, persistentvolumeclaims]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods/proxy]
    verbs: [get]
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch, patch, update]
  - apiGroups: [apps]
    resources: [statefulsets, deployments]
    verbs: [get, list, watch, patch]
  - apiGroups: [apps]
    resources: [statefulsets/scale, deployments/scale]
    verbs: [get, patch, update]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: watchkeeper
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: watchkeeper
subjects:
  - kind: ServiceAccount
    name: watchkeeper
"""


def _platform_tree(addresses: Addresses) -> dict[str, str]:
    ring = hashring_bytes(addresses).decode()
    indented = "\n".join("    " + line for line in ring.splitlines())
    return {
        "README.md": "# monitoring platform (GitOps source of the watchkeeper lab)\n\n"
                     "Kustomize bases with Helm values; ArgoCD syncs `overlays/<env>`.\n",
        "base/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "namespace: monitoring\nresources:\n  - thanos-receive.yaml\n"
            "  - hashring-configmap.yaml\n  - watchkeeper-rbac.yaml\n"
        ),
        "base/hashring-configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: thanos-receive-hashring\n"
            f"data:\n  hashrings.json: |\n{indented}\n"
        ),
        "base/thanos-receive.yaml": (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: thanos-receive\n"
            "spec:\n  replicas: 3\n  serviceName: thanos-receive\n"
            "  selector:\n    matchLabels: {app.kubernetes.io/name: thanos-receive}\n"
            "  template:\n    metadata:\n      labels: {app.kubernetes.io/name: thanos-receive}\n"
            "    spec:\n      terminationGracePeriodSeconds: 900\n      containers:\n"
            "        - name: thanos-receive\n          image: quay.io/thanos/thanos:v0.40.1\n"
            "          args: [receive, --receive.replication-factor=2,"
            " --receive.hashrings-algorithm=ketama,"
            " --receive.hashrings-file=/etc/thanos/hashrings.json]\n"
        ),
        "base/watchkeeper-rbac.yaml": WATCHKEEPER_RBAC,
        "overlays/lab/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources:\n  - ../../base\n"
        ),
        "helm/values-lab.yaml": (
            "# Helm values for the lab environment\nprometheusAgent:\n  replicas: 1\n"
            "  remoteWrite:\n    url: http://thanos-receive.monitoring.svc:19291/api/v1/receive\n"
            "thanosReceive:\n  replicas: 3\n  replicationFactor: 2\n"
        ),
    }
