"""Table tests of the pure TSDB backup logic: retention selection, the manifest, listing
verification, block metadata, backup prefixes, and what makes a Prometheus impossible to
snapshot (agent mode, admin API off)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import prom_tsdb, s3_backup
from pydantic import ValidationError

from runbooks.backup.backup_tsdb import BackupTsdbParams
from runbooks.backup.restore_tsdb import RestoreTsdbParams

RUN = "20260315T120000Z"


def decide(names: list[str], incomplete: tuple[str, ...] = (), daily: int = 7, weekly: int = 4,
           monthly: int = 6, run: str = RUN) -> dict[str, str]:
    backups = [{"name": n, "complete": n not in incomplete} for n in names]
    return {d["backup"]: d["action"]
            for d in s3_backup.select_retention(backups, run, daily, weekly, monthly)}


# Three backups a day from 1 to 14 March 2026 (a Sunday is 1 March; ISO weeks 9-11).
MARCH = [f"202603{day:02d}T{hour:02d}0000Z" for day in range(1, 15) for hour in (0, 8, 16)]


@pytest.mark.parametrize(("daily", "weekly", "monthly", "kept"), [
    # The newest of each of the last 3 days.
    (3, 0, 0, ["20260314T160000Z", "20260313T160000Z", "20260312T160000Z"]),
    # Weekly: the newest of each ISO week (week 11 starts Mon 9th, week 10 Mon 2nd, 9 Sun 1st).
    (0, 3, 0, ["20260314T160000Z", "20260308T160000Z", "20260301T160000Z"]),
    # Monthly: one month has backups; the newest of it.
    (0, 0, 6, ["20260314T160000Z"]),
    # Rules overlap: the union, no duplicates.
    (2, 2, 1, ["20260314T160000Z", "20260313T160000Z", "20260308T160000Z"]),
    # Everything at 0: the newest complete backup is still kept.
    (0, 0, 0, ["20260314T160000Z"]),
])
def test_retention_keeps_the_newest_of_each_period(daily: int, weekly: int, monthly: int,
                                                   kept: list[str]) -> None:
    decisions = decide(MARCH, daily=daily, weekly=weekly, monthly=monthly)
    assert sorted(n for n, a in decisions.items() if a == "keep") == sorted(kept)
    assert len(decisions) == len(MARCH)


def test_retention_never_deletes_the_newest_complete_backup_when_newer_ones_are_incomplete(
) -> None:
    names = ["20260310T000000Z", "20260311T000000Z", "20260312T000000Z"]
    decisions = decide(names, incomplete=("20260311T000000Z", "20260312T000000Z"), daily=0,
                       weekly=0, monthly=0)
    assert decisions == {"20260310T000000Z": "keep", "20260311T000000Z": "delete",
                         "20260312T000000Z": "delete"}


@pytest.mark.parametrize(("incomplete", "run", "action"), [
    ("20260315T115959Z", RUN, "delete"),  # older than the run: a leftover of a killed run
    (RUN, RUN, "keep"),  # this run's own backup, still uploading
    ("20260315T120001Z", RUN, "keep"),  # a run that started later
])
def test_incomplete_backups_go_only_when_older_than_the_run(incomplete: str, run: str,
                                                           action: str) -> None:
    decisions = decide(["20260301T000000Z", incomplete], incomplete=(incomplete,), run=run)
    assert decisions[incomplete] == action
    assert decisions["20260301T000000Z"] == "keep"


def test_incomplete_backups_never_count_towards_retention() -> None:
    names = ["20260313T000000Z", "20260314T000000Z"]
    decisions = decide(names, incomplete=("20260314T000000Z",), daily=1, weekly=0, monthly=0)
    assert decisions == {"20260314T000000Z": "delete", "20260313T000000Z": "keep"}


def test_names_that_are_not_timestamps_are_never_touched() -> None:
    decisions = decide(["20260301T000000Z", "manual-copy", "2026-03-01"], daily=0, weekly=0,
                       monthly=0)
    assert decisions == {"20260301T000000Z": "keep"}


@pytest.mark.parametrize(("name", "valid"), [
    ("20260315T120000Z", True), ("20261301T000000Z", False), ("20260315T120000", False),
    ("20260315t120000z", False), ("", False), ("x20260315T120000Z", False),
])
def test_parse_timestamp(name: str, valid: bool) -> None:
    assert (s3_backup.parse_timestamp(name) is not None) is valid


@pytest.mark.parametrize(("prefix", "cluster", "timestamp", "key"), [
    ("prometheus-tsdb", "observability", RUN, f"prometheus-tsdb/observability/{RUN}/"),
    ("a/b/", "c", "", "a/b/c/"),
    ("", "c", RUN, f"c/{RUN}/"),
])
def test_backup_prefix(prefix: str, cluster: str, timestamp: str, key: str) -> None:
    assert s3_backup.backup_prefix(prefix, cluster, timestamp) == key


ULID_A, ULID_B = "01HZZZZZZZZZZZZZZZZZZZZZZA", "01HZZZZZZZZZZZZZZZZZZZZZZB"


def meta(ulid: str, lo: int, hi: int) -> dict:
    return {"ulid": ulid, "minTime": lo, "maxTime": hi, "version": 1,
            "stats": {"numSamples": 10, "numSeries": 2}}


def test_manifest_from_a_snapshot_directory(tmp_path: Path) -> None:
    for ulid, lo, hi in ((ULID_B, 7_200_000, 14_400_000), (ULID_A, 0, 7_200_000)):
        (tmp_path / ulid / "chunks").mkdir(parents=True)
        (tmp_path / ulid / "meta.json").write_text(json.dumps(meta(ulid, lo, hi)))
        (tmp_path / ulid / "index").write_bytes(ulid.encode() * 3)
        (tmp_path / ulid / "chunks" / "000001").write_bytes(b"x" * 100)
    files, metas = s3_backup.scan_tree(str(tmp_path))
    assert [f["path"] for f in files] == [
        f"{u}/{n}" for u in (ULID_A, ULID_B) for n in ("chunks/000001", "index", "meta.json")]
    hashed = [dict(f, sha256=s3_backup.sha256_file(str(tmp_path / f["path"]))) for f in files]
    manifest = s3_backup.build_manifest("obs", RUN, hashed, s3_backup.blocks_from_metas(metas),
                                        {"version": "2.42.0"})
    assert [b["ulid"] for b in manifest["blocks"]] == [ULID_A, ULID_B]  # by min_time
    assert (manifest["min_time"], manifest["max_time"]) == (0, 14_400_000)
    assert manifest["file_count"] == 6
    assert manifest["total_bytes"] == sum(f["size"] for f in files)
    index = next(f for f in manifest["files"] if f["path"] == f"{ULID_A}/index")
    assert index["sha256"] == hashlib.sha256(ULID_A.encode() * 3).hexdigest()
    assert manifest["source"] == {"version": "2.42.0"}
    assert s3_backup.manifest_problems(manifest) == []


def test_a_block_whose_meta_names_another_ulid_is_refused() -> None:
    with pytest.raises(s3_backup.BackupFailure, match=r"meta\.json says ulid"):
        s3_backup.blocks_from_metas({ULID_A: meta(ULID_B, 0, 1)})


def test_symlinks_are_refused(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(s3_backup.BackupFailure, match="not a regular file"):
        s3_backup.scan_tree(str(tmp_path))


@pytest.mark.parametrize(("files", "problem"), [
    ([], "lists no files"),
    ([{"path": "../etc/passwd", "size": 1, "sha256": "0" * 64}], "unsafe"),
    ([{"path": "/abs", "size": 1, "sha256": "0" * 64}], "unsafe"),
    ([{"path": "manifest.json", "size": 1, "sha256": "0" * 64}], "unsafe"),
    ([{"path": "a/index", "size": 1, "sha256": "short"}], "sha256 missing"),
])
def test_manifest_problems(files: list, problem: str) -> None:
    found = s3_backup.manifest_problems({"format": 1, "files": files})
    assert any(problem in p for p in found), found


def test_listing_problems_name_missing_keys_and_size_mismatches() -> None:
    expected = {"p/a": 10, "p/b": 20, "p/c": 30}
    listed = {"p/a": 10, "p/b": 19, "p/extra": 1}
    assert s3_backup.listing_problems(expected, listed) == [
        "p/b: 19 bytes in the bucket, 20 on disk", "p/c: missing"]
    assert s3_backup.listing_problems(expected, dict(expected)) == []


@pytest.mark.parametrize(("flags", "problem"), [
    ({"enable-feature": "agent", "web.enable-admin-api": "false"}, "agent mode"),
    ({"enable-feature": "exemplar-storage,agent"}, "agent mode"),
    ({"agent": "true", "web.enable-admin-api": "true"}, "agent mode"),  # Prometheus 3.x
    ({"enable-feature": "", "web.enable-admin-api": "false"}, "admin API is off"),
    ({"enable-feature": "", "web.enable-admin-api": "true"}, ""),
])
def test_server_problem(flags: dict, problem: str) -> None:
    found = prom_tsdb.server_problem(flags)
    assert (problem in found) if problem else found == ""
    if problem == "agent mode":
        assert "blocks bucket" in found  # says what to back up instead


def test_tsdb_path_prefers_the_inventory() -> None:
    flags = {"storage.tsdb.path": "/prometheus"}
    assert prom_tsdb.tsdb_path(flags, "") == "/prometheus"
    assert prom_tsdb.tsdb_path(flags, "/mnt/prom") == "/mnt/prom"


@pytest.mark.parametrize(("params", "message"), [
    ({"prefix": "/abs"}, "relative S3 key prefix"),
    ({"prefix": "a/../b"}, "relative S3 key prefix"),
    ({"keep_daily": -1}, "greater than or equal to 0"),
    ({"chunk_size_mb": 4}, "greater than or equal to 5"),
])
def test_backup_params_refused(params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BackupTsdbParams.model_validate(params)


@pytest.mark.parametrize(("params", "message"), [
    ({}, "target_dir"),
    ({"target_dir": "relative/dir"}, "absolute path"),
    ({"target_dir": "/r", "backup": "latest"}, "TIMESTAMP"),
])
def test_restore_params_refused(params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RestoreTsdbParams.model_validate(params)
