"""backup-bucket and restore-bucket through the CLI against the lab's real MinIO.

The blocks are real: Prometheus's own `promtool tsdb create-blocks-from openmetrics` writes them
(three 2h-aligned blocks, one series each), and they are uploaded as Thanos uploads them (meta.json
last, with a `thanos` section carrying external labels) into a source bucket of this module's
own; backups go to a backup bucket of its own. Both are versioned like the lab's and deleted
(every version) at the end. Each test backs up under a target prefix of its own, so tests do not
depend on each other's order. The lab's own buckets are only read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.watchkeeper.platform.plugins.module_utils.thanos_blocks import (
    human_bytes,
)
from watchkeeper_lab import Lab

from runbooks.clients import s3_client
from runbooks.inventory import load_inventory
from tests.conftest import cli

pytestmark = pytest.mark.lab

BASE = 1735689600  # 2025-01-01T00:00:00Z; blocks at 00:00, 02:00 and 04:00
HOUR_MS = 3600 * 1000
LABELS = {"cluster": "wktest", "receive_replica": "wktest-0", "tenant_id": "default-tenant"}


# --------------------------------------------------------------------------- fixtures


def write_inventory(directory: Path, lab: Lab, blocks: str, backups: str,
                    endpoint: str | None = None,
                    keys: tuple[str, str] = ("WATCHKEEPER_LAB_S3_ACCESS_KEY",
                                             "WATCHKEEPER_LAB_S3_SECRET_KEY")) -> Path:
    """An observability cluster on the lab's S3 with the given buckets (and a workload cluster,
    which the bucket runbooks leave alone)."""
    a = lab.addresses
    (directory / "host_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "wk_environment": "lab"},
        "children": {"lab": {"hosts": {"observability": {}, "k8s-cluster-01": {}}}}}}))
    (directory / "host_vars" / "observability.yml").write_text(yaml.safe_dump({
        "wk_role": "observability",
        "wk_receive_http_urls": [f"http://{a.receiver(0)}:10902"],
        "wk_s3_endpoint": endpoint or f"http://{a.s3}:9000",
        "wk_s3_region": "us-east-1",
        "wk_s3_bucket_blocks": blocks,
        "wk_s3_bucket_backups": backups,
        "wk_s3_access_key": {"env": keys[0]},
        "wk_s3_secret_key": {"env": keys[1]}}))
    (directory / "host_vars" / "k8s-cluster-01.yml").write_text(yaml.safe_dump({
        "wk_agent_url": f"http://{a.agent(0)}:9090",
        "wk_receive_remote_write_url": f"http://{a.receiver(0)}:19291/api/v1/receive"}))
    return directory


@pytest.fixture(scope="module")
def s3(lab: Lab) -> Any:
    return s3_client(load_inventory(lab.inventory_dir).cluster("observability"))


def empty_and_delete(s3: Any, bucket: str) -> None:
    """Every version and delete marker, then the bucket."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def buckets(s3: Any) -> Iterator[tuple[str, str]]:
    """A versioned source (blocks) bucket and a versioned backup bucket of this module's own."""
    suffix = os.urandom(3).hex()
    names = (f"wktest-blocks-{suffix}", f"wktest-backups-{suffix}")
    for name in names:
        s3.create_bucket(Bucket=name)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield names
    for name in names:
        empty_and_delete(s3, name)


def make_blocks(directory: Path) -> dict[str, dict[str, Any]]:
    """Three real TSDB blocks written by promtool, one 2h window each (first hour filled)."""
    lines = ["# HELP wktest_series a test series", "# TYPE wktest_series gauge"]
    for window in range(3):
        for second in range(0, 3600, 30):
            lines.append(f'wktest_series{{window="{window}"}} {second} '
                         f"{BASE + window * 7200 + second}")
    lines.append("# EOF")
    source = directory / "input.om"
    source.write_text("\n".join(lines) + "\n")
    out = directory / "blocks"
    subprocess.run([_promtool(), "tsdb", "create-blocks-from", "openmetrics", str(source),
                    str(out)], check=True, capture_output=True, timeout=120)
    found = {}
    for block in sorted(out.iterdir()):
        meta = json.loads((block / "meta.json").read_text())
        # What Thanos adds before it uploads: external labels, resolution, source.
        meta["thanos"] = {"labels": LABELS, "downsample": {"resolution": 0},
                          "source": "receive"}
        (block / "meta.json").write_text(json.dumps(meta, indent=1))
        (block / "tombstones").unlink(missing_ok=True)  # Thanos does not upload tombstones
        files = {str(p.relative_to(block)): p.stat().st_size
                 for p in sorted(block.rglob("*")) if p.is_file()}
        found[block.name] = {"dir": block, "meta": meta, "files": files}
    assert len(found) == 3, found
    return found


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian ships promtool)")
    return binary


def upload_block(s3: Any, bucket: str, prefix: str, block: dict[str, Any],
                 with_meta: bool = True) -> None:
    """As Thanos's shipper does: chunks and index first, meta.json last."""
    ulid = block["dir"].name
    for rel in sorted(block["files"], key=lambda r: r == "meta.json"):
        if rel == "meta.json" and not with_meta:
            continue
        s3.upload_file(str(block["dir"] / rel), bucket, f"{prefix}{ulid}/{rel}")


@pytest.fixture(scope="module")
def blocks(s3: Any, buckets: tuple[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    made = make_blocks(tmp_path_factory.mktemp("tsdb"))
    for block in made.values():
        upload_block(s3, buckets[0], "", block)
    return made


@pytest.fixture(scope="module")
def inventory(lab: Lab, buckets: tuple[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_inventory(tmp_path_factory.mktemp("bucket-inventory") / "inventory", lab,
                           *buckets)


def run(inventory: Path, tmp_path: Path, runbook: str, *args: str,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                    dict[str, Any]]:
    """`watchkeeper run RUNBOOK` on the lab inventory's clusters; the result and the journal."""
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    result = cli("run", runbook, "-i", str(inventory), "--run-dir", str(run_dir),
                 "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **(env or {})})
    path = run_dir / "journal.json"
    return result, json.loads(path.read_text()) if path.exists() else {}


def step(journal: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [s for s in journal["steps"] if s["name"].startswith(prefix)
             and s["cluster"] == "observability"]
    assert found, [(s["cluster"], s["name"]) for s in journal["steps"]]
    return found[0]


def checks(journal_step: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in journal_step["checks"]}


def listing(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix):]] = item["Size"]
    return found


def expected(blocks: dict[str, dict[str, Any]], ulids: list[str] | None = None) -> dict[str, int]:
    return {f"{ulid}/{rel}": size for ulid, b in blocks.items() if ulids is None or ulid in ulids
            for rel, size in b["files"].items()}


def total(blocks: dict[str, dict[str, Any]]) -> int:
    return sum(sum(b["files"].values()) for b in blocks.values())


def backup(inventory: Path, tmp_path: Path, prefix: str, *args: str):
    return run(inventory, tmp_path, "backup-bucket", "-e", f"target_prefix={prefix}", *args)


BACKUP_STEP = "Copy new blocks"
RESTORE_STEP = "Restore blocks"


# --------------------------------------------------------------------------- backup


def test_check_mode_lists_what_it_would_copy_and_copies_nothing(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    result, journal = backup(inventory, tmp_path, "check/", "--check", "--diff")
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["check_mode"] is True
    planned = step(journal, BACKUP_STEP)
    assert planned["message"].startswith("would copy 3 block(s)")
    for ulid in blocks:
        assert f"{ulid} (new)" in planned["message"]
    assert f"s3://{buckets[1]}/check/" in planned["message"]
    assert planned["diff_summary"]  # the blocks the backup would gain
    assert listing(s3, buckets[1], "check/") == {}  # nothing copied
    # The workload cluster is not where the bucket is: the run leaves it out, saying why.
    assert not [s for s in journal["steps"] if s["cluster"] == "k8s-cluster-01"]
    assert "k8s-cluster-01" in journal["left_out"], journal["left_out"]
    assert "workload cluster" in journal["left_out"]["k8s-cluster-01"]


def test_backup_copies_every_block_then_skips_them_all(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    result, journal = backup(inventory, tmp_path, "full/")
    assert result.returncode == 0, result.stdout + result.stderr
    copied = step(journal, BACKUP_STEP)
    assert copied["status"] == "changed"
    assert copied["message"].startswith(f"copied 3 block(s), {total(blocks)} bytes"), copied
    assert "skipped 0 (present with equal sizes, 0 bytes)" in copied["message"]
    found = checks(copied)
    assert found["bucket versioning"]["status"] == "ok"
    assert found["bucket versioning"]["evidence"] == (f"{buckets[0]}: Enabled,"
                                                      f" {buckets[1]}: Enabled")
    assert found["backup integrity"] == {
        "name": "backup integrity", "status": "ok", "hint": "",
        "evidence": f"3 block(s) in s3://{buckets[1]}/full/ with meta.json, index, chunks/"
                    " and the source's sizes"}
    # What MinIO itself holds: every file of every block, with the source's sizes.
    assert listing(s3, buckets[1], "full/") == expected(blocks)
    for ulid, block in blocks.items():
        body = s3.get_object(Bucket=buckets[1], Key=f"full/{ulid}/meta.json")["Body"].read()
        assert json.loads(body) == block["meta"]
    # The source is untouched.
    assert listing(s3, buckets[0], "") == expected(blocks)

    result, journal = backup(inventory, tmp_path, "full/")
    assert result.returncode == 0, result.stdout
    again = step(journal, BACKUP_STEP)
    assert again["status"] == "ok"  # nothing changed
    assert again["message"].startswith("copied 0 block(s), 0 bytes")
    assert f"skipped 3 (present with equal sizes, {total(blocks)} bytes)" in again["message"]
    assert checks(again)["backup integrity"]["status"] == "ok"


def test_a_copy_without_meta_json_is_unfinished_and_is_redone(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = backup(inventory, tmp_path, "redo/")
    assert result.returncode == 0, result.stdout
    first = sorted(blocks)[0]
    # What a copy killed half-way leaves: some files, no meta.json.
    s3.delete_object(Bucket=buckets[1], Key=f"redo/{first}/meta.json")
    s3.delete_object(Bucket=buckets[1], Key=f"redo/{first}/index")

    result, journal = backup(inventory, tmp_path, "redo/", "--check")
    assert result.returncode == 0, result.stdout
    assert step(journal, BACKUP_STEP)["message"].startswith(
        f"would copy 1 block(s) ({_human(blocks[first])}): {first} (unfinished copy (no"
        " meta.json): redone)")

    result, journal = backup(inventory, tmp_path, "redo/")
    assert result.returncode == 0, result.stdout
    redone = step(journal, BACKUP_STEP)
    size = sum(blocks[first]["files"].values())
    assert redone["message"].startswith(f"copied 1 block(s), {size} bytes")
    assert f"skipped 2 (present with equal sizes, {total(blocks) - size} bytes)" in \
        redone["message"]
    assert listing(s3, buckets[1], "redo/") == expected(blocks)


def _human(block: dict[str, Any]) -> str:
    return str(human_bytes(sum(block["files"].values())))


def test_a_complete_copy_with_another_size_fails_naming_block_and_file(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = backup(inventory, tmp_path, "damaged/")
    assert result.returncode == 0, result.stdout
    victim = sorted(blocks)[1]
    source_size = blocks[victim]["files"]["chunks/000001"]
    s3.put_object(Bucket=buckets[1], Key=f"damaged/{victim}/chunks/000001", Body=b"truncated")

    result, journal = backup(inventory, tmp_path, "damaged/")
    assert result.returncode == 1, result.stdout
    failed = step(journal, BACKUP_STEP)
    assert failed["status"] == "failed"
    integrity = checks(failed)["backup integrity"]
    assert integrity["status"] == "fail"
    assert integrity["evidence"] == (f"{victim}/chunks/000001: {source_size} bytes in the"
                                     " source, 9 in the copy")
    assert "repair=true" in integrity["hint"]
    assert victim in journal["message"] and "chunks/000001" in journal["message"]
    # Not silently overwritten: the damaged copy is still there for inspection.
    assert listing(s3, buckets[1], f"damaged/{victim}/")["chunks/000001"] == 9

    result, journal = backup(inventory, tmp_path, "damaged/", "-e", "repair=true")
    assert result.returncode == 0, result.stdout
    repaired = step(journal, BACKUP_STEP)
    assert repaired["message"].startswith("copied 1 block(s)")
    assert listing(s3, buckets[1], "damaged/") == expected(blocks)
    # Versioning kept the damaged version.
    versions = s3.list_object_versions(Bucket=buckets[1],
                                       Prefix=f"damaged/{victim}/chunks/000001")["Versions"]
    assert sorted(v["Size"] for v in versions) == sorted([9, source_size, source_size])


def test_an_upload_in_progress_waits_and_a_large_object_is_copied_in_parts(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    """A source block without meta.json is still being uploaded by Thanos: left for the next
    run. Objects above the multipart threshold are copied with UploadPartCopy (the copy's ETag
    then names its part count)."""
    ulid = sorted(blocks)[2]
    block = blocks[ulid]
    upload_block(s3, buckets[0], "extra/", block, with_meta=False)
    big = os.urandom(12 * 1024 * 1024)
    s3.put_object(Bucket=buckets[0], Key=f"extra/{ulid}/chunks/000002", Body=big)

    args = ("-e", "source_prefix=extra/", "-e", "multipart_threshold_mib=5")
    result, journal = backup(inventory, tmp_path, "extra/", *args)
    assert result.returncode == 0, result.stdout
    waited = step(journal, BACKUP_STEP)
    assert waited["message"].startswith("copied 0 block(s)")
    assert "1 upload(s) in progress left for the next run" in waited["message"]
    assert listing(s3, buckets[1], "extra/") == {}

    s3.upload_file(str(block["dir"] / "meta.json"), buckets[0], f"extra/{ulid}/meta.json")
    result, journal = backup(inventory, tmp_path, "extra/", *args)
    assert result.returncode == 0, result.stdout
    size = sum(block["files"].values()) + len(big)
    assert step(journal, BACKUP_STEP)["message"].startswith(f"copied 1 block(s), {size} bytes")
    head = s3.head_object(Bucket=buckets[1], Key=f"extra/{ulid}/chunks/000002")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-3")  # 12 MiB in 5 MiB parts


# --------------------------------------------------------------------------- refusals


def refused_before_changes(result: subprocess.CompletedProcess[str], journal: dict[str, Any],
                           s3: Any, bucket: str, prefix: str) -> str:
    assert result.returncode == 3, result.stdout + result.stderr
    assert [s["phase"] for s in journal["steps"]] == ["validate"]  # no playbook ran
    assert listing(s3, bucket, prefix) == {}
    return str(journal["message"])


def test_wrong_bucket_is_refused_naming_the_field(
    lab: Lab, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    wrong = write_inventory(tmp_path / "wrong", lab, buckets[0], "wktest-no-such-bucket")
    result, journal = backup(wrong, tmp_path, "wrong/")
    message = refused_before_changes(result, journal, s3, buckets[1], "wrong/")
    assert "'wktest-no-such-bucket' (wk_s3_bucket_backups)" in message
    assert "no such bucket: fix wk_s3_bucket_backups" in message

    same = write_inventory(tmp_path / "same", lab, buckets[0], buckets[0])
    result, journal = backup(same, tmp_path, "same/")
    message = refused_before_changes(result, journal, s3, buckets[0], "same/")
    assert "wk_s3_bucket_backups is the blocks bucket itself" in message


def test_missing_or_wrong_credentials_are_refused_naming_the_field(
    lab: Lab, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    unset = write_inventory(tmp_path / "unset", lab, *buckets,
                            keys=("WKTEST_UNSET_ACCESS_KEY", "WKTEST_UNSET_SECRET_KEY"))
    result, journal = backup(unset, tmp_path, "creds/")
    message = refused_before_changes(result, journal, s3, buckets[1], "creds/")
    assert "wk_s3_access_key / wk_s3_secret_key" in message
    assert "export WKTEST_UNSET_ACCESS_KEY" in message

    wrong = write_inventory(tmp_path / "wrongkey", lab, *buckets,
                            keys=("WATCHKEEPER_LAB_S3_ACCESS_KEY", "WKTEST_WRONG_SECRET"))
    result, journal = run(wrong, tmp_path, "backup-bucket", "-e", "target_prefix=creds/",
                          env={"WKTEST_WRONG_SECRET": "not-the-secret-" + os.urandom(4).hex()})
    message = refused_before_changes(result, journal, s3, buckets[1], "creds/")
    assert "credentials were refused (SignatureDoesNotMatch)" in message
    assert "fix wk_s3_access_key / wk_s3_secret_key" in message


def test_unreachable_endpoint_is_refused_naming_the_field(
    lab: Lab, s3: Any, buckets: tuple[str, str], tmp_path: Path
) -> None:
    # The lab's S3 address, a port nothing listens on.
    down = write_inventory(tmp_path / "down", lab, *buckets,
                           endpoint=f"http://{lab.addresses.s3}:1")
    result, journal = backup(down, tmp_path, "down/")
    message = refused_before_changes(result, journal, s3, buckets[1], "down/")
    assert "cannot connect" in message and "fix wk_s3_endpoint" in message


@pytest.fixture
def unversioned(s3: Any) -> Iterator[str]:
    name = "wktest-unversioned-" + os.urandom(3).hex()
    s3.create_bucket(Bucket=name)
    yield name
    empty_and_delete(s3, name)


def test_versioning_off_is_refused_unless_only_warned(
    lab: Lab, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], unversioned: str,
    tmp_path: Path,
) -> None:
    plain = write_inventory(tmp_path / "plain", lab, buckets[0], unversioned)
    result, journal = backup(plain, tmp_path, "v/")
    message = refused_before_changes(result, journal, s3, unversioned, "")
    assert f"versioning of bucket '{unversioned}' (wk_s3_bucket_backups) is Off" in message
    assert "require_versioning=false" in message

    result, journal = backup(plain, tmp_path, "v/", "-e", "require_versioning=false")
    assert result.returncode == 0, result.stdout
    warned = checks(step(journal, BACKUP_STEP))["bucket versioning"]
    assert warned["status"] == "warn"
    assert warned["evidence"] == f"{buckets[0]}: Enabled, {unversioned}: Off"
    assert listing(s3, unversioned, "v/") == expected(blocks)


# --------------------------------------------------------------------------- restore


def restore(inventory: Path, tmp_path: Path, *args: str):
    return run(inventory, tmp_path, "restore-bucket", "-e", "source_prefix=full/", *args)


def test_restore_of_a_time_range_restores_only_overlapping_blocks(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    if not listing(s3, buckets[1], "full/"):
        result, _ = backup(inventory, tmp_path, "full/")
        assert result.returncode == 0, result.stdout
    ulids = sorted(blocks)  # in time order: 00:00, 02:00, 04:00
    scratch = "drill-" + os.urandom(3).hex() + "/"
    # 02:30 .. 03:00 lies inside the second block only.
    window = ("-e", f"min_time={BASE + 9000}", "-e", f"max_time={BASE + 10800}")

    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}", "--check",
                              *window)
    assert result.returncode == 0, result.stdout + result.stderr
    assert step(journal, RESTORE_STEP)["message"].startswith(
        f"would restore 1 block(s) ({_human(blocks[ulids[1]])}): {ulids[1]} (new)")
    assert listing(s3, buckets[0], scratch) == {}

    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}", *window)
    assert result.returncode == 0, result.stdout + result.stderr
    restored = step(journal, RESTORE_STEP)
    assert restored["message"].startswith(
        f"restored 1 block(s), {sum(blocks[ulids[1]]['files'].values())} bytes")
    assert listing(s3, buckets[0], scratch) == expected(blocks, [ulids[1]])
    found = checks(restored)
    assert found["backup blocks"]["evidence"] == (
        f"3 complete block(s) in s3://{buckets[1]}/full/, 1 selected by time range,"
        " 0 unfinished (not restored)")
    assert found["restored sizes"]["status"] == "ok"

    # A range ending at the first block's last sample (its maxTime is exclusive): that block
    # only.
    first_end = blocks[ulids[0]]["meta"]["maxTime"]
    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}", "--check",
                              "-e", f"max_time={(first_end - 1) / 1000}")
    assert result.returncode == 0, result.stdout
    assert step(journal, RESTORE_STEP)["message"].startswith(
        f"would restore 1 block(s) ({_human(blocks[ulids[0]])}): {ulids[0]} (new)")

    # Everything into the same scratch prefix: the one already there (equal sizes) is skipped.
    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}")
    assert result.returncode == 0, result.stdout
    assert step(journal, RESTORE_STEP)["message"].startswith("restored 2 block(s)")
    assert "skipped 1 (already there with equal sizes)" in step(journal, RESTORE_STEP)["message"]
    assert listing(s3, buckets[0], scratch) == expected(blocks)


def test_restore_refuses_to_overwrite_a_different_block_unless_asked(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    if not listing(s3, buckets[1], "full/"):
        result, _ = backup(inventory, tmp_path, "full/")
        assert result.returncode == 0, result.stdout
    ulids = sorted(blocks)
    scratch = "taken-" + os.urandom(3).hex() + "/"
    s3.put_object(Bucket=buckets[0], Key=f"{scratch}{ulids[2]}/index", Body=b"other")

    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}")
    assert result.returncode == 1, result.stdout
    refused = step(journal, RESTORE_STEP)
    assert refused["status"] == "failed"
    assert (f"1 selected block(s) already exist in s3://{buckets[0]}/{scratch} and differ from"
            f" the backup: {ulids[2]}") in refused["message"]
    assert "overwrite=true" in refused["message"]
    # Refused before copying anything: only the foreign object is there.
    assert listing(s3, buckets[0], scratch) == {f"{ulids[2]}/index": 5}

    result, journal = restore(inventory, tmp_path, "-e", f"target_prefix={scratch}",
                              "-e", "overwrite=true")
    assert result.returncode == 0, result.stdout
    assert step(journal, RESTORE_STEP)["message"].startswith("restored 3 block(s)")
    assert listing(s3, buckets[0], scratch) == expected(blocks)


def test_restore_never_restores_an_unfinished_backup_copy(
    inventory: Path, s3: Any, buckets: tuple[str, str], blocks: dict[str, Any], tmp_path: Path
) -> None:
    result, _ = backup(inventory, tmp_path, "partial/")
    assert result.returncode == 0, result.stdout
    ulids = sorted(blocks)
    s3.delete_object(Bucket=buckets[1], Key=f"partial/{ulids[0]}/meta.json")
    scratch = "unfinished-" + os.urandom(3).hex() + "/"
    result, journal = run(inventory, tmp_path, "restore-bucket", "-e", "source_prefix=partial/",
                          "-e", f"target_prefix={scratch}")
    assert result.returncode == 0, result.stdout
    restored = step(journal, RESTORE_STEP)
    assert restored["message"].startswith("restored 2 block(s)")
    assert "1 unfinished (not restored)" in checks(restored)["backup blocks"]["evidence"]
    assert listing(s3, buckets[0], scratch) == expected(blocks, ulids[1:])
