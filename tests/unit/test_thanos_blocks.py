"""Table tests of the pure Thanos block logic (what to copy, overlap, integrity) and of the
bucket runbooks' parameters."""

from __future__ import annotations

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import thanos_blocks as tb
from pydantic import ValidationError

from runbooks.backup.backup_bucket import BackupBucketParams
from runbooks.backup.restore_bucket import RestoreBucketParams

A, B = "01JA0000000000000000000000", "01JB0000000000000000000000"
FULL = {"meta.json": 300, "index": 500, "chunks/000001": 900}


@pytest.mark.parametrize("source, target, repair, expected", [
    ({A: FULL}, {}, False, ("copy", "new")),
    ({A: FULL}, {A: {"index": 500}}, False,
     ("copy", "unfinished copy (no meta.json): redone")),
    ({A: FULL}, {A: dict(FULL)}, False, ("skip", "present with equal sizes")),
    ({A: FULL}, {A: {**FULL, "extra": 1}}, False, ("skip", "present with equal sizes")),
    ({A: FULL}, {A: {**FULL, "chunks/000001": 9}}, False,
     ("mismatch", "chunks/000001: 900 bytes in the source, 9 in the copy")),
    ({A: FULL}, {A: {"meta.json": 300, "chunks/000001": 900}}, False,
     ("mismatch", "index: missing in the copy")),
    ({A: FULL}, {A: {**FULL, "index": 1}}, True,
     ("copy", "repaired: index: 500 bytes in the source, 1 in the copy")),
    ({A: {"index": 500, "chunks/000001": 900}}, {}, False,
     ("pending", "no meta.json in the source yet (upload in progress)")),
    ({A: {"meta.json": 300, "chunks/000001": 900}}, {}, False,
     ("broken", "the source block lacks index")),
    ({A: {"meta.json": 300, "index": 5}}, {}, False, ("broken", "the source block lacks chunks/")),
    ({A: {**FULL, "deletion-mark.json": 10}}, {}, False,
     ("marked", "marked for deletion in the source")),
])
def test_plan(source, target, repair, expected) -> None:
    assert tb.plan(source, target, repair=repair) == {A: expected}


def test_plan_include_limits_the_blocks() -> None:
    assert tb.plan({A: FULL, B: FULL}, {}, include={B}) == {B: ("copy", "new")}


@pytest.mark.parametrize("start, end, expected", [
    (None, None, True),
    (1000, None, True),      # ends after the start
    (2000, None, False),     # maxTime is exclusive: ends exactly at the start
    (None, 1000, True),      # starts at the end: overlaps
    (None, 999, False),
    (1500, 1600, True),      # inside
    (0, 500, False),
    (2500, 3000, False),
])
def test_overlaps(start, end, expected) -> None:
    assert tb.overlaps({"minTime": 1000, "maxTime": 2000}, start, end) is expected


def test_list_keys_outside_ulid_directories_are_ignored() -> None:
    assert tb.ULID.match(A) and not tb.ULID.match("debug") and not tb.ULID.match(A.lower())
    assert tb.data_files(FULL) == ["chunks/000001", "index"]


@pytest.mark.parametrize("value, ok", [
    ("", True), ("thanos-blocks/", True), ("a/b/", True), ("thanos-blocks", False),
    ("/abs/", False), ("../up/", False), ("a//", False)])
def test_prefixes(value, ok) -> None:
    if ok:
        assert BackupBucketParams(target_prefix=value).target_prefix == value
    else:
        with pytest.raises(ValidationError, match="target_prefix"):
            BackupBucketParams(target_prefix=value)


def test_restore_time_range_parses_and_must_be_ordered() -> None:
    params = RestoreBucketParams(min_time="2025-01-01T02:00:00Z", max_time=1735700400)
    assert params.min_time is not None and params.max_time is not None
    with pytest.raises(ValidationError, match="is after max_time"):
        RestoreBucketParams(min_time="2025-01-02T00:00:00Z", max_time="2025-01-01T00:00:00Z")
