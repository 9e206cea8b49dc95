"""Table tests of verify-backups' pure logic (plugins/module_utils/backup_verify.py) and of its
runbook's parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import backup_verify as bv
from pydantic import ValidationError

from runbooks.backup.verify_backups import VerifyBackupsParams

H = 3600 * 1000
BLOCKS = [{"min_time": 0, "max_time": 2 * H}, {"min_time": 2 * H, "max_time": 4 * H},
          {"min_time": 4 * H, "max_time": 5 * H}]


@pytest.mark.parametrize(("first", "last", "problems"), [
    (0, 5 * H - 1, []),
    (1000, 5 * H, []),                       # an instant is at most one step late
    (None, None, ["no sample at all"]),
    (2 * H + 5000, 5 * H, ["first sample at"]),       # data missing from the first block
    (0, 3 * H, ["last sample at"]),                   # the last block holds nothing
    (-60_000, 5 * H, ["first sample at"]),            # older than the backup says
    (0, 5 * H + 60_000, ["last sample at"]),          # newer than the backup says
])
def test_range_problems(first: int | None, last: int | None, problems: list[str]) -> None:
    found = bv.range_problems(first, last, BLOCKS, 1000)
    assert len(found) == len(problems), found
    for want, got in zip(problems, found, strict=True):
        assert got.startswith(want)


def test_bounds_of_a_manifest_and_of_a_bucket_selection() -> None:
    assert bv.bounds(BLOCKS) == (0, 5 * H, 2 * H, 4 * H)
    selected = {"A": {"minTime": 10, "maxTime": 20}, "B": {"minTime": 10, "maxTime": 30},
                "C": {"minTime": 25, "maxTime": 40}}
    assert bv.bounds(selected) == (10, 40, 30, 25)
    assert bv.bounds([]) == (None, None, None, None)
    assert bv.range_problems(0, 0, [], 1000) == ["the backup lists no block"]


@pytest.mark.parametrize(("span_ms", "step"), [(0, 1), (1000, 1), (2000 * 1000, 1),
                                               (2001 * 1000, 2), (14 * 86400 * 1000, 605)])
def test_query_step(span_ms: int, step: int) -> None:
    assert bv.query_step_seconds(0, span_ms) == step


def test_instants() -> None:
    matrix = [{"metric": {}, "values": [[100.5, "3"], [101.5, "4"]]},
              {"metric": {}, "values": [[99.0, "1"]]}]
    assert bv.instants(matrix) == (99000, 101500)
    assert bv.instants([]) == (None, None)


def test_a_failed_kind_keeps_its_last_verified_timestamp() -> None:
    previous = {("tsdb", "obs"): {"m": 1.0}, ("bucket", "obs"): {"m": 2.0},
                ("tsdb", "other"): {"m": 3.0}}
    merged = bv.merge_verified(previous, "obs", {"bucket": {"m": 9.0}})
    assert merged == {("tsdb", "obs"): {"m": 1.0}, ("bucket", "obs"): {"m": 9.0},
                      ("tsdb", "other"): {"m": 3.0}}


def test_record_verified_carries_forward_and_labels_kind_and_cluster(tmp_path: Path) -> None:
    values = {"last_verified_timestamp_seconds": 100.0,
              "verified_backup_timestamp_seconds": 40.0, "verified_backup_age_seconds": 60.0}
    path, error = bv.record_verified(str(tmp_path), "obs", {"tsdb": values, "bucket": values})
    assert not error
    path, _ = bv.record_verified(str(tmp_path), "obs", {"bucket": dict(
        values, last_verified_timestamp_seconds=200.0)})
    text = Path(path).read_text()
    assert ('watchkeeper_backup_last_verified_timestamp_seconds{cluster="obs",kind="tsdb"} 100.0'
            in text)
    assert ('watchkeeper_backup_last_verified_timestamp_seconds{cluster="obs",kind="bucket"}'
            " 200.0" in text)
    assert 'watchkeeper_backup_verified_backup_age_seconds{cluster="obs",kind="tsdb"} 60.0' in text


@pytest.mark.parametrize(("outcome", "status"), [
    ({"status": "verified"}, "ok"), ({"status": "skipped"}, "skipped"),
    ({"status": "failed"}, "fail"), ({}, "fail")])
def test_kind_check(outcome: dict[str, str], status: str) -> None:
    assert bv.kind_check("tsdb", outcome)["status"] == status


def test_remove_scratch_dir_refuses_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    inside = root / "run" / "cluster"
    inside.mkdir(parents=True)
    with pytest.raises(bv.VerifyFailure):
        bv.remove_scratch_dir(str(tmp_path), str(root))
    with pytest.raises(bv.VerifyFailure):
        bv.remove_scratch_dir(str(root), str(root))
    assert bv.remove_scratch_dir(str(inside), str(root))
    assert root.is_dir() and not any(root.iterdir())


@pytest.mark.parametrize("params", [
    {"scratch_prefix": ""}, {"scratch_prefix": "no-slash"}, {"bucket_prefix": "/abs/"},
    {"tsdb_prefix": "../up"}, {"scratch_dir": "relative"}, {"repository": "Upper"},
    {"bucket_window_hours": 0}, {"skip": "bucket,logs"}])
def test_bad_parameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        VerifyBackupsParams.model_validate(params)


@pytest.mark.parametrize(("given", "kinds"), [
    ("bucket", ("bucket",)), ("bucket, tsdb", ("bucket", "tsdb")), (["opensearch"],
                                                                    ("opensearch",)), ("", ())])
def test_kinds_are_skipped_by_name(given: object, kinds: tuple[str, ...]) -> None:
    assert VerifyBackupsParams.model_validate({"skip": given}).skip == kinds
