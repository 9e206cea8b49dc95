"""backup-tsdb and restore-tsdb through the CLI against the lab: the real Prometheus server
(prometheus-ha-0, admin API on), the real agents, the real MinIO, and Prometheus servers these
tests start themselves (Debian's /usr/bin/prometheus on 127.0.0.1): one over generated TSDB
blocks big enough to kill S3 in the middle of its upload, one without the admin API, one on a
restored directory.

Every backup goes under a key prefix of this module's own in the lab's backup bucket; every
version of every object under it is deleted at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3_backup
from watchkeeper_lab import Lab
from watchkeeper_lab.process import Record, stop

from benchmarks._tsdb_data import METRIC, GeneratedTsdb, generate
from runbooks.clients import s3_client
from runbooks.inventory import load_inventory
from tests.conftest import Process, cli, free_port, wait_ready

pytestmark = pytest.mark.lab
CLUSTER = "observability"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tsdb_lab(lab: Lab) -> Lab:
    """The session's lab with its Prometheus server and S3 healthy (up restarts what is down)."""
    health = {c.name: c.healthy for c in lab.status().components}
    if not (health.get("prometheus-ha-0") and health.get("s3")):
        lab.up()
    return lab


@pytest.fixture(scope="module")
def bucket(tsdb_lab: Lab) -> str:
    return load_inventory(tsdb_lab.inventory_dir).cluster(CLUSTER).s3_bucket_backups


@pytest.fixture(scope="module")
def s3(tsdb_lab: Lab) -> Any:
    return s3_client(load_inventory(tsdb_lab.inventory_dir).cluster(CLUSTER))


@pytest.fixture(scope="module")
def root_prefix(s3: Any, bucket: str) -> Iterator[str]:
    """This module's key prefix; every version of everything under it goes at the end."""
    prefix = "wktest-tsdb-" + os.urandom(3).hex()
    yield prefix
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix + "/"):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                    Prefix=prefix + "/"):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                      UploadId=upload["UploadId"])


@dataclass
class OwnPrometheus:
    """A Prometheus server this module started (stopped by its PID)."""

    url: str
    tsdb: Path
    process: Process
    data: GeneratedTsdb | None = None


def start_prometheus(root: Path, tsdb: Path, *flags: str) -> OwnPrometheus:
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (root / "prometheus.yml").write_text("global: {scrape_interval: 1h}\n")
    process = Process("prometheus", [
        "/usr/bin/prometheus", f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={tsdb}", f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=10y", *flags], root / "prometheus.log")
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/-/ready", deadline_s=60)
    except TimeoutError:
        process.stop()
        raise
    return OwnPrometheus(url, tsdb, process)


@pytest.fixture(scope="module")
def big_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPrometheus]:
    """A Prometheus server with the admin API over ~180 MB of generated blocks."""
    root = tmp_path_factory.mktemp("big-prometheus")
    data = generate(root / "data", series=2000, hours=6, copies=7)
    server = start_prometheus(root, data.path, "--web.enable-admin-api")
    server.data = data
    yield server
    server.process.stop()


def inventory_with(lab: Lab, directory: Path, **overrides: Any) -> Path:
    """A copy of the lab's inventory whose observability host has `overrides` (wk_ names)."""
    shutil.copytree(lab.inventory_dir, directory)
    path = directory / "host_vars" / f"{CLUSTER}.yml"
    values = yaml.safe_load(path.read_text())
    values.update(overrides)
    path.write_text(yaml.safe_dump(values))
    return directory


def for_server(lab: Lab, tmp_path: Path, server: OwnPrometheus) -> Path:
    return inventory_with(lab, tmp_path / f"inventory-{len(list(tmp_path.glob('inventory-*')))}",
                          wk_prometheus_url=server.url, wk_prometheus_tsdb_path=str(server.tsdb))


def run(inventory: Path, tmp_path: Path, runbook: str, *args: str,
        limit: str = CLUSTER) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`watchkeeper run RUNBOOK`; the result and the journal."""
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    result = cli("run", runbook, "-i", str(inventory), "--limit", limit, "--run-dir",
                 str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")}, timeout=600)
    journal_path = run_dir / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return result, journal


def step(journal: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in journal["steps"] if s["name"] == name]
    assert found, [s["name"] for s in journal["steps"]]
    return found[0]


UPLOAD = "Upload and verify the backup, manifest last"
RETENTION = "Apply backup retention"
RESTORE = "Download and verify the backup"


def backups(s3: Any, bucket: str, prefix: str) -> dict[str, bool]:
    """{TIMESTAMP: complete} under PREFIX/observability/."""
    return {b["name"]: b["complete"]
            for b in s3_backup.list_backups(s3, bucket, f"{prefix}/{CLUSTER}/")}


def objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    return s3_backup.list_objects(s3, bucket, prefix + "/")


def snapshots(tsdb: Path) -> list[str]:
    directory = tsdb / "snapshots"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


def query(url: str, promql: str, at: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": promql, "time": str(at)})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def lab_tsdb(lab: Lab) -> Path:
    return Path(load_inventory(lab.inventory_dir).cluster(CLUSTER).prometheus_tsdb_path)


# --------------------------------------------------------------------------- backup


def test_backup_manifest_lists_every_file_with_its_sha256_and_the_block_ulids(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, tmp_path: Path,
) -> None:
    prefix = f"{root_prefix}/manifest"
    result, journal = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e",
                          f"prefix={prefix}")
    assert result.returncode == 0, result.stdout + result.stderr
    [(name, complete)] = backups(s3, bucket, prefix).items()
    assert complete
    base = f"{prefix}/{CLUSTER}/{name}/"
    manifest = s3_backup.read_manifest(s3, bucket, base)
    listed = objects(s3, bucket, prefix)
    # Exactly the files the manifest lists, plus the manifest; sizes equal.
    assert {k: v for k, v in listed.items() if k != base + "manifest.json"} == {
        base + f["path"]: f["size"] for f in manifest["files"]}
    for item in manifest["files"]:
        body = s3.get_object(Bucket=bucket, Key=base + item["path"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == item["sha256"], item["path"]
    # Every block directory is listed with its ULID and the time range of its meta.json.
    dirs = {f["path"].split("/")[0] for f in manifest["files"]}
    assert dirs == {b["ulid"] for b in manifest["blocks"]} and dirs
    for block in manifest["blocks"]:
        meta = json.loads(s3.get_object(Bucket=bucket,
                                        Key=f"{base}{block['ulid']}/meta.json")["Body"].read())
        assert (block["min_time"], block["max_time"]) == (meta["minTime"], meta["maxTime"])
    assert manifest["min_time"] == min(b["min_time"] for b in manifest["blocks"])
    assert manifest["max_time"] == max(b["max_time"] for b in manifest["blocks"])
    with urllib.request.urlopen(f"http://{tsdb_lab.addresses.prometheus}:9090/api/v1/status/"
                                "buildinfo", timeout=10) as response:
        version = json.loads(response.read())["data"]["version"]
    assert manifest["source"]["version"] == version
    assert manifest["cluster"] == CLUSTER and manifest["timestamp"] == name
    # The snapshot is deleted once verified.
    assert manifest["source"]["snapshot"] not in snapshots(lab_tsdb(tsdb_lab))
    uploaded = step(journal, UPLOAD)
    assert uploaded["status"] == "changed" and "manifest written" in uploaded["message"]
    assert "local snapshot deleted" in uploaded["message"]


def test_check_mode_uploads_and_deletes_nothing(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, tmp_path: Path,
) -> None:
    prefix = f"{root_prefix}/check"
    result, _ = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}")
    assert result.returncode == 0, result.stdout
    before, local = objects(s3, bucket, prefix), snapshots(lab_tsdb(tsdb_lab))
    result, journal = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "--check", "-e",
                          f"prefix={prefix}", "-e", "keep_daily=0", "-e", "keep_weekly=0",
                          "-e", "keep_monthly=0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["check_mode"] is True
    assert objects(s3, bucket, prefix) == before
    assert snapshots(lab_tsdb(tsdb_lab)) == local
    assert step(journal, UPLOAD)["message"].startswith("would upload ")
    # The planned backup counts as the newest: the existing one would go.
    [existing] = backups(s3, bucket, prefix)
    assert step(journal, RETENTION)["message"].startswith(
        f"would delete 1 backup(s) under s3://{bucket}/{prefix}/{CLUSTER}/: {existing}")


def test_an_agent_is_refused_with_the_reason(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, tmp_path: Path,
) -> None:
    prefix = f"{root_prefix}/agent"
    # A workload cluster has only its agent.
    result, journal = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e",
                          f"prefix={prefix}", limit="k8s-cluster-01")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "only the agent" in journal["message"] and "blocks bucket" in journal["message"]
    # wk_prometheus_url pointing at an agent: detected from its flags.
    agent = f"http://{tsdb_lab.addresses.agent(0)}:9090"
    inventory = inventory_with(tsdb_lab, tmp_path / "inv", wk_prometheus_url=agent)
    result, journal = run(inventory, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}")
    assert result.returncode == 3, result.stdout + result.stderr
    message = journal["message"]
    assert f"wk_prometheus_url {agent}" in message and "agent mode" in message
    assert "no TSDB and no snapshot API" in message and "backup-bucket" in message
    assert objects(s3, bucket, prefix) == {}


def test_admin_api_off_is_refused_before_anything_changes(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, tmp_path: Path,
) -> None:
    server = start_prometheus(tmp_path / "noadmin", tmp_path / "noadmin" / "data")
    try:
        inventory = for_server(tsdb_lab, tmp_path, server)
        prefix = f"{root_prefix}/noadmin"
        result, journal = run(inventory, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}")
        assert result.returncode == 3, result.stdout + result.stderr
        assert "admin API is off" in journal["message"]
        assert "--web.enable-admin-api" in journal["message"]
        assert snapshots(server.tsdb) == []
        assert objects(s3, bucket, prefix) == {}
    finally:
        server.process.stop()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"wk_s3_bucket_backups": "no-such-bucket-wk"}, "wk_s3_bucket_backups"),
    ({"wk_s3_endpoint": "http://127.0.0.1:{port}"}, "wk_s3_endpoint"),
    ({"wk_s3_secret_key": {"env": "WK_TEST_TSDB_UNSET_SECRET"}}, "wk_s3_secret_key"),
    ({"wk_s3_access_key": {"env": "WK_TEST_TSDB_WRONG_KEY"}}, "wk_s3_access_key"),
])
def test_bad_s3_input_is_refused_naming_the_field(
    tsdb_lab: Lab, root_prefix: str, tmp_path: Path, overrides: dict[str, Any], field: str,
) -> None:
    overrides = {k: v.format(port=free_port()) if isinstance(v, str) else v
                 for k, v in overrides.items()}
    inventory = inventory_with(tsdb_lab, tmp_path / "inv", **overrides)
    local = snapshots(lab_tsdb(tsdb_lab))
    os.environ["WK_TEST_TSDB_WRONG_KEY"] = "not-the-lab-key"
    try:
        result, journal = run(inventory, tmp_path, "backup-tsdb", "-e",
                              f"prefix={root_prefix}/bad")
    finally:
        del os.environ["WK_TEST_TSDB_WRONG_KEY"]
    assert result.returncode == 3, result.stdout + result.stderr
    assert field in journal["message"], journal["message"]
    assert "Take the TSDB snapshot" not in [s["name"] for s in journal["steps"]]
    assert snapshots(lab_tsdb(tsdb_lab)) == local


def test_s3_killed_mid_upload_leaves_no_manifest_and_the_next_run_completes(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, big_prometheus: OwnPrometheus,
    tmp_path: Path,
) -> None:
    prefix = f"{root_prefix}/killed"
    inventory = for_server(tsdb_lab, tmp_path, big_prometheus)
    outcome: dict[str, Any] = {}

    def backup() -> None:
        # One request at a time, small parts: the upload lasts long enough to be cut.
        outcome["run"] = run(inventory, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}",
                             "-e", "concurrency=1", "-e", "chunk_size_mb=5")

    thread = threading.Thread(target=backup)
    thread.start()
    deadline = time.monotonic() + 120
    while not objects(s3, bucket, prefix):  # the first file is in: the upload is under way
        assert thread.is_alive(), outcome
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.02)
    state = json.loads((tsdb_lab.dir / "state.json").read_text())
    record = state["processes"]["s3"]
    stop(Record(record["pid"], record["start_ticks"], record["argv0"]), grace_seconds=0)
    thread.join(timeout=600)
    result, journal = outcome["run"]
    try:
        assert result.returncode == 1, result.stdout + result.stderr
        uploaded = step(journal, UPLOAD)
        assert uploaded["status"] == "failed"
        assert "no manifest was written" in uploaded["message"]
        assert RETENTION not in [s["name"] for s in journal["steps"]]
    finally:
        tsdb_lab.up()  # S3 back
    [(failed, complete)] = backups(s3, bucket, prefix).items()
    assert complete is False  # some files, no manifest: it does not look like a backup
    assert big_prometheus.data is not None
    assert 0 < len(objects(s3, bucket, prefix)) < len(big_prometheus.data.blocks) * 4
    assert snapshots(big_prometheus.tsdb) == []  # the failed run's snapshot is gone too

    result, journal = run(inventory, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}")
    assert result.returncode == 0, result.stdout + result.stderr
    found = backups(s3, bucket, prefix)
    assert failed not in found and list(found.values()) == [True], found
    retention = step(journal, RETENTION)
    assert retention["status"] == "changed" and failed in retention["message"]
    [name] = found
    manifest = s3_backup.read_manifest(s3, bucket, f"{prefix}/{CLUSTER}/{name}/")
    assert set(big_prometheus.data.blocks) <= {b["ulid"] for b in manifest["blocks"]}


def test_retention_keeps_the_newest_complete_backup_and_foreign_prefixes(
    tsdb_lab: Lab, s3: Any, bucket: str, root_prefix: str, tmp_path: Path,
) -> None:
    prefix = f"{root_prefix}/retention"
    base = f"{prefix}/{CLUSTER}/"
    result, _ = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e", f"prefix={prefix}")
    assert result.returncode == 0, result.stdout
    [first] = backups(s3, bucket, prefix)
    time.sleep(1.1)  # TIMESTAMP has seconds
    # Someone's own copy (not a timestamp: never touched), and the leftover of a run killed
    # long ago (a timestamp without manifest: deleted).
    s3.put_object(Bucket=bucket, Key=base + "manual-copy/keep-me", Body=b"not ours")
    s3.put_object(Bucket=bucket, Key=base + "20200101T000000Z/01HZZZZZZZZZZZZZZZZZZZZZZA/index",
                  Body=b"partial")
    # Same day as the first: keep_daily=7 keeps the newest backup of each day only.
    result, journal = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e",
                          f"prefix={prefix}")
    assert result.returncode == 0, result.stdout
    left = backups(s3, bucket, prefix)
    [second] = [n for n in left if n not in (first, "manual-copy")]
    assert left == {second: True, "manual-copy": False}
    message = step(journal, RETENTION)["message"]
    assert message.startswith("deleted 2 backup(s)") and first in message
    assert "20200101T000000Z" in message

    # Everything at 0: the newest complete backup is still kept.
    time.sleep(1.1)
    result, journal = run(tsdb_lab.inventory_dir, tmp_path, "backup-tsdb", "-e",
                          f"prefix={prefix}", "-e", "keep_daily=0", "-e", "keep_weekly=0",
                          "-e", "keep_monthly=0")
    assert result.returncode == 0, result.stdout
    left = backups(s3, bucket, prefix)
    [third] = [n for n in left if n != "manual-copy"]
    assert left == {third: True, "manual-copy": False} and third > second
    decisions = step(journal, RETENTION)["message"]
    assert decisions.startswith("deleted 1 backup(s)") and second in decisions


# --------------------------------------------------------------------------- restore


@pytest.fixture(scope="module")
def big_backup(tsdb_lab: Lab, root_prefix: str, big_prometheus: OwnPrometheus,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(inventory, prefix) of a complete backup of the big Prometheus."""
    tmp = tmp_path_factory.mktemp("big-backup")
    inventory = for_server(tsdb_lab, tmp, big_prometheus)
    prefix = f"{root_prefix}/restore"
    result, _ = run(inventory, tmp, "backup-tsdb", "-e", f"prefix={prefix}")
    assert result.returncode == 0, result.stdout + result.stderr
    return inventory, prefix


def test_restore_refuses_a_corrupted_file_and_names_it(
    s3: Any, bucket: str, big_backup: tuple[Path, str], tmp_path: Path,
) -> None:
    inventory, prefix = big_backup
    [name] = backups(s3, bucket, prefix)
    source = f"{prefix}/{CLUSTER}/{name}/"
    corrupt = f"{prefix}/corrupt-copy/{name}/"
    for key in objects(s3, bucket, source.rstrip("/")):
        s3.copy_object(Bucket=bucket, Key=corrupt + key[len(source):],
                       CopySource={"Bucket": bucket, "Key": key})
    manifest = s3_backup.read_manifest(s3, bucket, source)
    victim = next(f["path"] for f in manifest["files"] if f["path"].endswith("/index"))
    body = bytearray(s3.get_object(Bucket=bucket, Key=source + victim)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte, same size
    s3.put_object(Bucket=bucket, Key=corrupt + victim, Body=bytes(body))

    target = tmp_path / "restored"
    result, journal = run(inventory, tmp_path, "restore-tsdb", "-e", f"prefix={prefix}",
                          "-e", "source_cluster=corrupt-copy", "-e", f"target_dir={target}")
    assert result.returncode == 1, result.stdout + result.stderr
    message = step(journal, RESTORE)["message"]
    assert "checksum mismatch in 1 file(s)" in message and victim in message
    assert not target.exists()
    assert not [p for p in os.listdir(tmp_path) if ".wk-restore-" in p]  # no partial left


def test_restored_data_is_queryable_by_a_real_prometheus(
    s3: Any, bucket: str, big_backup: tuple[Path, str], big_prometheus: OwnPrometheus,
    tmp_path: Path,
) -> None:
    inventory, prefix = big_backup
    data = big_prometheus.data
    assert data is not None
    target = tmp_path / "restored"
    # Check mode names the backup and writes nothing.
    result, journal = run(inventory, tmp_path, "restore-tsdb", "--check", "-e",
                          f"prefix={prefix}", "-e", f"target_dir={target}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert step(journal, RESTORE)["message"].startswith(f"would restore s3://{bucket}/{prefix}/")
    assert not target.exists()

    result, journal = run(inventory, tmp_path, "restore-tsdb", "-e", f"prefix={prefix}",
                          "-e", f"target_dir={target}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every sha256 verified" in step(journal, RESTORE)["message"]
    assert set(data.blocks) <= set(os.listdir(target))

    server = start_prometheus(tmp_path / "restored-prometheus", target)
    try:
        assert query(server.url, f"count({METRIC})", data.end) == [
            {"metric": {}, "value": [data.end, str(data.series)]}]
        span = data.end - data.start
        [series] = query(server.url, f'{METRIC}{{i="0"}}[{span + 1}s]', data.end)
        stamps = [v[0] for v in series["values"]]
        assert (stamps[0], stamps[-1]) == (data.start, data.end)
        assert len(stamps) == span // data.step + 1
        assert query(server.url, f"count({METRIC})", data.start - 3600) == []
    finally:
        server.process.stop()

    # A second restore into the same, now full, directory is refused before anything changes.
    result, journal = run(inventory, tmp_path, "restore-tsdb", "-e", f"prefix={prefix}",
                          "-e", f"target_dir={target}")
    assert result.returncode == 3
    assert "exists and is not empty" in journal["message"]
