"""Table tests of the pure OpenSearch logic: snapshot verdict, retention selection, restore
renaming, document-count comparison, log index selection, and the runbooks' parameters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    log_indices,
    opensearch_snapshot,
)
from pydantic import ValidationError

from runbooks.backup.backup_opensearch import BackupOpenSearchParams
from runbooks.backup.cleanup_log_indices import CleanupLogIndicesParams
from runbooks.backup.restore_opensearch import RestoreOpenSearchParams

DAY = opensearch_snapshot.DAY_MS
NOW = 1_000 * DAY


def snap(name: str, days_ago: float, state: str = "SUCCESS") -> dict:
    return {"snapshot": name, "state": state, "start_time_in_millis": int(NOW - days_ago * DAY)}


def decide(snapshots: list[dict], **limits) -> dict[str, str]:
    decisions = opensearch_snapshot.select_retention(snapshots, NOW, "wk-", **limits)
    return {d["snapshot"]: d["action"] for d in decisions}


@pytest.mark.parametrize(("snapshots", "limits", "deleted"), [
    # max_count: the oldest beyond the count go.
    ([snap("wk-1", 3), snap("wk-2", 2), snap("wk-3", 1)], {"max_count": 2, "min_count": 1},
     {"wk-1"}),
    # max_age: older than the age go.
    ([snap("wk-1", 40), snap("wk-2", 20), snap("wk-3", 1)], {"max_age_days": 30}, {"wk-1"}),
    # min_count wins over max_age: all are old, the newest 2 successful stay.
    ([snap("wk-1", 50), snap("wk-2", 45), snap("wk-3", 40)],
     {"max_age_days": 30, "min_count": 2}, {"wk-1"}),
    # The newest successful one stays even when newer ones failed and everything is old.
    ([snap("wk-1", 50), snap("wk-2", 45, "PARTIAL"), snap("wk-3", 40, "FAILED")],
     {"max_age_days": 30, "min_count": 1}, {"wk-2", "wk-3"}),
    # Failed snapshots do not count towards min_count.
    ([snap("wk-1", 50), snap("wk-2", 45, "PARTIAL"), snap("wk-3", 40)],
     {"max_count": 1, "min_count": 2}, {"wk-2"}),
    # A running snapshot is never touched and takes no count position.
    ([snap("wk-1", 3), snap("wk-2", 2), snap("wk-3", 0, "IN_PROGRESS")],
     {"max_count": 1, "min_count": 1}, {"wk-1"}),
    # Snapshots not taken by the runbook (other prefix) are never deleted.
    ([snap("manual-1", 400), snap("wk-1", 400), snap("wk-2", 1)],
     {"max_age_days": 30}, {"wk-1"}),
    # No limits: nothing goes.
    ([snap("wk-1", 400), snap("wk-2", 1)], {}, set()),
])
def test_retention_selection(snapshots: list[dict], limits: dict, deleted: set[str]) -> None:
    actions = decide(snapshots, **limits)
    assert {name for name, action in actions.items() if action == "delete"} == deleted
    assert "manual-1" not in actions


def test_retention_never_deletes_below_min_count_whatever_the_limits() -> None:
    snapshots = [snap(f"wk-{i}", i) for i in range(10)]
    actions = decide(snapshots, max_age_days=0.5, max_count=1, min_count=4)
    assert sorted(n for n, a in actions.items() if a == "keep") == ["wk-0", "wk-1", "wk-2",
                                                                      "wk-3"]


def test_verdict_success_needs_every_shard() -> None:
    ok = {"snapshot": "s", "state": "SUCCESS", "shards": {"total": 5, "successful": 5,
                                                           "failed": 0}}
    assert [c["status"] for c in opensearch_snapshot.verdict(ok)] == ["ok", "ok"]
    partial = {"snapshot": "s", "state": "PARTIAL",
               "shards": {"total": 2, "successful": 1, "failed": 1},
               "failures": [{"index": "red", "shard_id": 0, "reason": "primary shard is not"
                             " allocated"}]}
    checks = opensearch_snapshot.verdict(partial)
    assert [c["status"] for c in checks] == ["fail", "fail"]
    assert "PARTIAL" in checks[0]["evidence"]
    assert "red[0]: primary shard is not allocated" in checks[1]["evidence"]
    empty = {"snapshot": "s", "state": "SUCCESS", "shards": {"total": 0, "successful": 0}}
    assert opensearch_snapshot.verdict(empty)[1]["status"] == "fail"


def test_verdict_a_failed_snapshot_fails_with_opensearchs_reason() -> None:
    """A snapshot that ended FAILED (e.g. the repository became unwritable mid-way) is no
    backup, whatever its shard counts say. The verdict on OpenSearch's _snapshot answer; the
    lab test (test_partial_snapshot_fails_the_run_and_skips_retention) drives the real run
    through the same verdict with a PARTIAL snapshot."""
    failed = {"snapshot": "s", "state": "FAILED", "reason": "IOException: disk full",
              "shards": {"total": 3, "successful": 3, "failed": 0}}
    checks = opensearch_snapshot.verdict(failed)
    assert checks[0]["status"] == "fail"
    assert checks[0]["evidence"] == "s: FAILED (IOException: disk full)"
    assert "not a backup" in checks[0]["hint"]


@pytest.mark.parametrize(("pattern", "replacement", "source", "target"), [
    ("(.+)", "restored-$1", "logs-2024.01.01", "restored-logs-2024.01.01"),
    ("logs-(.+)", "drill-logs-$1", "logs-2024.01.01", "drill-logs-2024.01.01"),
    ("(?<name>logs)-(.+)", "${name}-r-$2", "logs-x", "logs-r-x"),
    ("nomatch", "x", "logs-x", "logs-x"),
])
def test_rename_follows_opensearch(pattern: str, replacement: str, source: str,
                                   target: str) -> None:
    assert opensearch_snapshot.renamed([source], pattern, replacement) == {source: target}


def test_rename_problems_refuse_overwriting_the_snapshot_and_collisions() -> None:
    mapping = opensearch_snapshot.renamed(["logs-a", "logs-b"], "(.+)", "$1")
    assert opensearch_snapshot.rename_problems(mapping, ["logs-a", "logs-b"])
    mapping = opensearch_snapshot.renamed(["logs-a", "logs-b"], "logs-.", "restored")
    assert any("both" in p for p in opensearch_snapshot.rename_problems(mapping, []))
    mapping = opensearch_snapshot.renamed(["logs-a"], "(.+)", "restored-$1")
    assert opensearch_snapshot.rename_problems(mapping, ["logs-a"]) == []


def test_count_checks_fail_on_any_difference() -> None:
    checks = opensearch_snapshot.count_checks(
        {"a": 40, "b": 40}, {"a": ("r-a", 40), "b": ("r-b", 39)}, "snapshot count of")
    assert [c["status"] for c in checks] == ["ok", "fail"]
    assert "-1" in checks[1]["evidence"]
    missing = opensearch_snapshot.count_checks({}, {"a": ("r-a", 1)}, "live index")
    assert missing[0]["status"] == "fail"


@pytest.mark.parametrize(("pattern", "bad"), [
    ("logs-*", False), ("wktest-logs-*", False), ("logs-2024.01.01", False),
    ("*", True), ("_all", True), ("*-logs", True), (".kibana*", True), ("-logs-*", True),
    ("logs-*,audit-*", True), ("Logs-*", True), ("", True),
])
def test_pattern_safety(pattern: str, bad: bool) -> None:
    assert bool(opensearch_snapshot.pattern_problem(pattern)) is bad
    with_python_side = CleanupLogIndicesParams
    if bad:
        with pytest.raises(ValidationError):
            with_python_side(pattern=pattern)
    else:
        assert with_python_side(pattern=pattern).pattern == pattern


TODAY = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("name", "created_days_ago", "source", "action"), [
    ("logs-2026.02.07", 0, "name", "delete"),   # 31 days old by name
    ("logs-2026.02.08", 0, "name", "keep"),     # exactly 30: not older than 30
    ("logs-2026.03.10", 0, "name", "keep"),
    ("logs-restored", 400, "name", "keep"),     # no date in the name: never deleted by name
    ("logs-2026.13.45", 400, "name", "keep"),   # digits of a date's shape, not a date
    ("logs-app-2020.01.01", 0, "name", "delete"),
    ("logs-2026.03.10", 31, "creation", "delete"),
    ("logs-2020.01.01", 29, "creation", "keep"),
    ("audit-2020.01.01", 400, "name", "keep"),  # not matching the pattern
])
def test_log_index_selection(name: str, created_days_ago: float, source: str,
                             action: str) -> None:
    created = int((TODAY.timestamp() - created_days_ago * 86400) * 1000)
    decisions = log_indices.select_old_indices(
        [{"index": name, "creation_date_ms": created}], "logs-*", 30, source, "%Y.%m.%d",
        TODAY)
    assert decisions[0]["action"] == action, decisions


def test_date_format_without_year_is_refused() -> None:
    with pytest.raises(ValueError, match="no year"):
        log_indices.date_regex("%m.%d")
    with pytest.raises(ValidationError, match="no year"):
        CleanupLogIndicesParams(date_format="%m.%d")


def test_backup_params_name_the_bad_field() -> None:
    with pytest.raises(ValidationError, match="max_count"):
        BackupOpenSearchParams(max_count=1, min_count=3)
    with pytest.raises(ValidationError, match="min_count"):
        BackupOpenSearchParams(min_count=0)
    with pytest.raises(ValidationError, match="repository"):
        BackupOpenSearchParams(repository="Bad Name")
    assert BackupOpenSearchParams(indices="logs-*,audit-*").indices == ["logs-*", "audit-*"]
    assert BackupOpenSearchParams().location == "watchkeeper"


def test_restore_params_refuse_renaming_onto_the_source() -> None:
    with pytest.raises(ValidationError, match="rename_replacement"):
        RestoreOpenSearchParams(rename_replacement="$1")
    with pytest.raises(ValidationError, match="rename_pattern"):
        RestoreOpenSearchParams(rename_pattern="(")
