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
from runbooks.lab.platform import tree
from runbooks.lab.topology import Addresses

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


def git(args: list[str], cwd: Path) -> str:
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
    git(["init", "--bare", "--initial-branch=main", str(bare)], bare.parent)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        git(["clone", "-q", str(bare), str(work)], Path(tmp))
        for path, text in tree(addresses).items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(["add", "-A"], work)
        git(["commit", "-q", "-m", "Platform configuration for the watchkeeper lab"], work)
        git(["push", "-q", "origin", "main"], work)
