"""verify-backups through the CLI against the lab: real backups made with backup-tsdb,
backup-bucket and backup-opensearch (the lab's Prometheus server, receivers' blocks in MinIO,
OpenSearch's logs-* indices), restored into scratch and served by a real Prometheus
(/usr/bin/prometheus) and a real `thanos store` + `thanos query` (the lab's build).

Every backup goes under a key prefix / snapshot repository of this module's own; every version
of every object under it, the repository, its snapshots and any scratch index are deleted at
the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from watchkeeper_lab import Lab, build

from runbooks.clients import opensearch_client, s3_client
from runbooks.inventory import load_inventory
from tests.conftest import cli

pytestmark = pytest.mark.lab
CLUSTER = "observability"
WORKLOAD = "k8s-cluster-01"
METRIC = "watchkeeper_backup_last_verified_timestamp_seconds"
MANIFEST_INDEX = "watchkeeper-snapshots"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def verify_lab(lab: Lab) -> Lab:
    """The session's lab with S3, OpenSearch and the Prometheus server healthy."""
    health = {c.name: c.healthy for c in lab.status().components}
    if not all(health.get(n) for n in ("s3", "opensearch", "prometheus-ha-0")):
        lab.up()
    return lab


@pytest.fixture(scope="module")
def thanos() -> str:
    return str(build.ensure(build.load_specs()["thanos"], print))


@pytest.fixture(scope="module")
def s3(verify_lab: Lab) -> Any:
    return s3_client(load_inventory(verify_lab.inventory_dir).cluster(CLUSTER))


@pytest.fixture(scope="module")
def opensearch(verify_lab: Lab) -> Any:
    return opensearch_client(load_inventory(verify_lab.inventory_dir).cluster(CLUSTER))


@pytest.fixture(scope="module")
def bucket(verify_lab: Lab) -> str:
    return load_inventory(verify_lab.inventory_dir).cluster(CLUSTER).s3_bucket_backups


def delete_versions(s3: Any, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})


def versions_under(s3: Any, bucket: str, prefix: str) -> int:
    return sum(len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
               for page in s3.get_paginator("list_object_versions").paginate(
                   Bucket=bucket, Prefix=prefix))


@pytest.fixture(scope="module")
def names(s3: Any, opensearch: Any, bucket: str) -> Iterator[dict[str, str]]:
    """This module's prefixes and repository; everything under them goes at the end."""
    tag = os.urandom(3).hex()
    root = f"wktest-verify-{tag}/"
    manifest_existed = opensearch.indices.exists(index=MANIFEST_INDEX)
    yield {"root": root, "tsdb": root + "prometheus-tsdb", "bucket": root + "thanos-blocks/",
           "scratch": root + "scratch/", "repository": f"wktest-verify-{tag}"}
    delete_versions(s3, bucket, root)
    repository = f"wktest-verify-{tag}"
    if repository in opensearch.snapshot.get_repository():
        for snap in opensearch.snapshot.get(repository=repository,
                                            snapshot="_all")["snapshots"]:
            opensearch.snapshot.delete(repository=repository, snapshot=snap["snapshot"])
        opensearch.snapshot.delete_repository(repository=repository)
    if not manifest_existed:
        opensearch.indices.delete(index=MANIFEST_INDEX, ignore_unavailable=True)


def run(lab: Lab, tmp_path: Path, runbook: str, *args: str, limit: str = CLUSTER,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                    dict[str, Any]]:
    """`watchkeeper run RUNBOOK` against the lab's inventory; the result and the journal."""
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    result = cli("run", runbook, "-i", str(lab.inventory_dir), "--limit", limit, "--run-dir",
                 str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **(env or {})},
                 timeout=900)
    journal_path = run_dir / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return result, journal


def checks(journal: dict[str, Any], cluster: str = CLUSTER) -> dict[str, dict[str, Any]]:
    """The verdict's checks of one cluster, by name."""
    found = {c["name"]: c for s in journal["steps"] if s["cluster"] == cluster
             and s["name"] == "Record the verdict and the verification metrics"
             for c in s["checks"]}
    assert found, [(s["name"], s["status"], s["message"]) for s in journal["steps"]]
    return found


def verified(textfiles: Path) -> dict[tuple[str, str], float]:
    """{(kind, cluster): last verified timestamp} from every textfile in the directory."""
    out: dict[tuple[str, str], float] = {}
    for path in textfiles.glob("*.prom"):
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                if sample.name == METRIC:
                    out[(sample.labels["kind"], sample.labels["cluster"])] = sample.value
    return out


def wait_for_blocks(s3: Any, bucket: str, deadline_s: float = 600) -> None:
    """Receivers upload their first 2m block 4-5 minutes after the lab starts."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        listing = s3.list_objects_v2(Bucket=bucket)
        if any(o["Key"].endswith("/meta.json") for o in listing.get("Contents", [])):
            return
        time.sleep(10)
    raise TimeoutError(f"no block with meta.json in s3://{bucket} after {deadline_s}s")


@pytest.fixture(scope="module")
def backups(verify_lab: Lab, names: dict[str, str], s3: Any,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One real backup of each kind, made by the backup runbooks."""
    tmp = tmp_path_factory.mktemp("backups")
    inventory = load_inventory(verify_lab.inventory_dir).cluster(CLUSTER)
    wait_for_blocks(s3, inventory.s3_bucket_blocks)
    for runbook, param in (("backup-tsdb", f"prefix={names['tsdb']}"),
                           ("backup-bucket", f"target_prefix={names['bucket']}"),
                           ("backup-opensearch", f"repository={names['repository']}")):
        result, journal = run(verify_lab, tmp, runbook, "-e", param)
        assert result.returncode == 0, (runbook, journal.get("message"), result.stderr[-2000:])
    return names


def verify_args(names: dict[str, str], scratch: Path) -> list[str]:
    """No program paths: the lab inventory names its own builds (wk_thanos_binary,
    wk_prometheus_binary), so every kind is verified with no extra flag."""
    return ["-e", f"tsdb_prefix={names['tsdb']}", "-e", f"bucket_prefix={names['bucket']}",
            "-e", f"repository={names['repository']}", "-e", f"scratch_prefix={names['scratch']}",
            "-e", f"scratch_dir={scratch}"]


def assert_no_scratch(s3: Any, bucket: str, opensearch: Any, names: dict[str, str],
                      scratch: Path) -> None:
    assert versions_under(s3, bucket, names["scratch"]) == 0
    assert not opensearch.indices.get(index="wk-verify-*", expand_wildcards="all")
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.rglob("*"))


# --------------------------------------------------------------------------- tests


def test_check_mode_says_what_it_would_restore_and_records_nothing(
        verify_lab: Lab, backups: dict[str, str], thanos: str, tmp_path: Path, s3: Any,
        bucket: str, opensearch: Any) -> None:
    textfiles, scratch = tmp_path / "textfiles", tmp_path / "scratch"
    result, journal = run(verify_lab, tmp_path, "verify-backups", "--check",
                          *verify_args(backups, scratch),
                          env={"WATCHKEEPER_TEXTFILE_DIR": str(textfiles)})
    assert result.returncode == 0, journal.get("message")
    found = checks(journal)
    assert found["tsdb backup"]["status"] == "skipped"
    assert "check mode: would restore s3://" in found["tsdb backup"]["evidence"]
    assert backups["tsdb"] in found["tsdb backup"]["evidence"]
    assert "thanos store + query" in found["bucket backup"]["evidence"]
    assert f"snapshot {backups['repository']}/" in found["opensearch backup"]["evidence"]
    assert verified(textfiles) == {}
    assert_no_scratch(s3, bucket, opensearch, backups, scratch)


def test_every_kind_verified_with_evidence_and_metric(
        verify_lab: Lab, backups: dict[str, str], thanos: str, tmp_path: Path, s3: Any,
        bucket: str, opensearch: Any) -> None:
    textfiles, scratch = tmp_path / "textfiles", tmp_path / "scratch"
    started = time.time()
    result, journal = run(verify_lab, tmp_path, "verify-backups",
                          *verify_args(backups, scratch),
                          env={"WATCHKEEPER_TEXTFILE_DIR": str(textfiles)})
    assert result.returncode == 0, journal.get("message")
    found = checks(journal)
    assert {n: c["status"] for n, c in found.items()} == {
        "tsdb backup": "ok", "bucket backup": "ok", "opensearch backup": "ok"}, found
    series_and_range = re.compile(r": (\d+) series, samples (\S+Z) \.\. (\S+Z) \(backup"
                                  r" (\S+Z) \.\. (\S+Z); step (\d+)s\)")
    for kind in ("tsdb", "bucket"):
        evidence = found[f"{kind} backup"]["evidence"]
        match = series_and_range.search(evidence)
        assert match, evidence
        assert int(match.group(1)) > 0
        first, last, low, high = (datetime.strptime(match.group(i), "%Y-%m-%dT%H:%M:%SZ")
                                  for i in (2, 3, 4, 5))
        step = timedelta(seconds=int(match.group(6)) + 1)  # an instant is <= 1 step late
        # Inside the backup's range; the last sample may precede a block's maxTime (Thanos
        # cuts blocks at aligned times, 2 minutes in the lab) by up to one block.
        assert low <= first < last <= high + step, evidence
        assert last >= high - timedelta(minutes=2), evidence
    assert "every sha256 verified" in found["tsdb backup"]["evidence"]
    assert "prometheus on 127.0.0.1:" in found["tsdb backup"]["evidence"]
    assert "thanos store 127.0.0.1:" in found["bucket backup"]["evidence"]
    counts = re.findall(r"(logs-\S+) (\d+)/(\d+) documents",
                        found["opensearch backup"]["evidence"])
    assert counts and all(a == b and int(a) > 0 for _, a, b in counts), counts
    stamps = verified(textfiles)
    assert set(stamps) == {("tsdb", CLUSTER), ("bucket", CLUSTER), ("opensearch", CLUSTER)}
    assert all(started <= v <= time.time() for v in stamps.values()), stamps
    text = "".join(p.read_text() for p in textfiles.glob("*.prom"))
    assert "watchkeeper_backup_verified_backup_age_seconds{" in text
    assert_no_scratch(s3, bucket, opensearch, backups, scratch)


def test_corrupt_tsdb_backup_fails_naming_the_file_and_keeps_the_metric(
        verify_lab: Lab, backups: dict[str, str], thanos: str, tmp_path: Path, s3: Any,
        bucket: str, opensearch: Any) -> None:
    textfiles, scratch = tmp_path / "textfiles", tmp_path / "scratch"
    env = {"WATCHKEEPER_TEXTFILE_DIR": str(textfiles)}
    args = verify_args(backups, scratch)
    result, journal = run(verify_lab, tmp_path, "verify-backups", *args, env=env)
    assert result.returncode == 0, journal.get("message")
    before = verified(textfiles)

    base = f"{backups['tsdb']}/{CLUSTER}/"
    manifests = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=base)
                       .get("Contents", []) if o["Key"].endswith("/manifest.json"))
    prefix = manifests[-1][:-len("manifest.json")]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifests[-1])["Body"].read())
    victim = next(f["path"] for f in manifest["files"] if "/chunks/" in f["path"])
    original = s3.get_object(Bucket=bucket, Key=prefix + victim)["Body"].read()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=prefix + victim, Body=bytes(damaged))
    try:
        result, journal = run(verify_lab, tmp_path, "verify-backups", *args, env=env)
    finally:
        s3.put_object(Bucket=bucket, Key=prefix + victim, Body=original)
    assert result.returncode == 1, journal.get("message")
    found = checks(journal)
    assert found["tsdb backup"]["status"] == "fail"
    assert "checksum mismatch" in found["tsdb backup"]["evidence"]
    assert victim in found["tsdb backup"]["evidence"], found["tsdb backup"]
    assert found["bucket backup"]["status"] == "ok"
    assert found["opensearch backup"]["status"] == "ok"
    after = verified(textfiles)
    assert after[("tsdb", CLUSTER)] == before[("tsdb", CLUSTER)]  # not advanced
    assert after[("bucket", CLUSTER)] > before[("bucket", CLUSTER)]
    assert victim in journal["message"] or "failed verification" in journal["message"]
    assert_no_scratch(s3, bucket, opensearch, backups, scratch)


def test_no_backup_fails_with_the_reason_and_undeclared_kinds_are_skipped(
        verify_lab: Lab, thanos: str, tmp_path: Path) -> None:
    textfiles, scratch = tmp_path / "textfiles", tmp_path / "scratch"
    none = "wktest-none-" + os.urandom(3).hex()
    result, journal = run(
        verify_lab, tmp_path, "verify-backups", "-e", f"tsdb_prefix={none}",
        "-e", f"bucket_prefix={none}/", "-e", f"repository={none}", "-e",
        f"thanos_binary={thanos}", "-e", f"scratch_dir={scratch}",
        "-e", f"scratch_prefix={none}/scratch/", limit=f"{CLUSTER},{WORKLOAD}",
        env={"WATCHKEEPER_TEXTFILE_DIR": str(textfiles)})
    assert result.returncode == 1
    found = checks(journal)
    assert {c["status"] for c in found.values()} == {"fail"}, found
    assert "no complete backup (with manifest.json) under s3://" in \
        found["tsdb backup"]["evidence"]
    assert "run backup-tsdb" in found["tsdb backup"]["hint"]
    assert "no complete block copy" in found["bucket backup"]["evidence"]
    assert f"snapshot repository {none} does not exist" in found["opensearch backup"]["evidence"]
    workload = checks(journal, WORKLOAD)
    assert {c["status"] for c in workload.values()} == {"skipped"}, workload
    assert "not declared by the inventory" in workload["opensearch backup"]["evidence"]
    assert "wk_opensearch_url" in workload["opensearch backup"]["hint"]
    assert verified(textfiles) == {}
