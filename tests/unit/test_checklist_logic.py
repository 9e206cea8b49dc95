"""Table tests of the checklists' pure evaluation (module_utils/checklist.py), the S3 growth
baseline choice, the consolidated report rows and the query answer parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import checklist as cl
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist_probe import (
    choose_baseline,
)

from runbooks.journal import Check, Journal, Step
from runbooks.quickref.quickref import QueryFailed, parse_answer
from runbooks.report import check_rows, check_summary

DAY = 86400.0
GIB = 1024**3


@pytest.mark.parametrize(("sync", "health", "status"), [
    ("Synced", "Healthy", "ok"),
    ("OutOfSync", "Healthy", "fail"),
    ("Synced", "Degraded", "fail"),
    ("Synced", "Missing", "fail"),
    ("Synced", "Progressing", "warn"),
    (None, None, "warn"),  # no controller: never a pass
])
def test_application(sync: str | None, health: str | None, status: str) -> None:
    result = cl.evaluate_application({"name": "a", "sync": sync, "health": health})
    assert result["status"] == status
    assert (result["hint"] != "") == (status != "ok")


def test_no_application_for_the_cluster_warns() -> None:
    assert cl.evaluate_applications([], "argocd", "c1")[0]["status"] == "warn"


@pytest.mark.parametrize(("used", "available", "status"), [
    (50, 50, "ok"), (80, 20, "warn"), (89, 11, "warn"), (90, 10, "fail"), (100, 0, "fail"),
])
def test_disk_thresholds(used: int, available: int, status: str) -> None:
    usage = {"total": 100, "used": used, "available": available, "directory_bytes": 5}
    assert cl.evaluate_disk("/v", usage, {})["status"] == status


def test_disk_thresholds_come_from_the_inventory_and_a_missing_path_is_skipped() -> None:
    usage = {"total": 100, "used": 60, "available": 40, "directory_bytes": None}
    assert cl.evaluate_disk("/v", usage, {"disk_warn_percent": 50})["status"] == "warn"
    assert cl.evaluate_disk("/v", usage, {"disk_warn_percent": None})["status"] == "ok"
    assert cl.evaluate_disk("/v", {"error": "not here"}, {})["status"] == "skipped"


def test_targets_down_fail_naming_them() -> None:
    up = {"job": "a", "url": "http://a/metrics", "health": "up"}
    down = {"job": "canary", "url": "http://c/metrics", "health": "down", "error": "refused"}
    assert cl.evaluate_targets([up])["status"] == "ok"
    result = cl.evaluate_targets([up, down])
    assert result["status"] == "fail" and "canary http://c/metrics" in result["evidence"]
    assert cl.evaluate_targets([])["status"] == "warn"


@pytest.mark.parametrize(("previous", "now_bytes", "status", "says"), [
    (None, 100, "ok", "no earlier record"),
    ({"at": 0.0, "bytes": 100, "objects": 1}, 120, "ok", "20.0% a week"),
    ({"at": 0.0, "bytes": 100, "objects": 1}, 200, "warn", "100.0% a week"),
    ({"at": 6.5 * DAY, "bytes": 100, "objects": 1}, 200, "ok", ">= 1 day old"),  # too recent
])
def test_bucket_growth(previous: dict[str, Any] | None, now_bytes: int, status: str,
                       says: str) -> None:
    usage = {"bytes": now_bytes, "objects": 2, "versions": 0}
    result = cl.evaluate_bucket("b", usage, previous, 7 * DAY, {})
    assert result["status"] == status and says in result["evidence"], result


def test_bucket_listing_error_fails() -> None:
    assert cl.evaluate_bucket("b", {"error": "AccessDenied"}, None, 0, {})["status"] == "fail"


def test_growth_baseline_is_the_newest_day_old_record_else_the_oldest() -> None:
    history = [{"at": 0.0}, {"at": 5 * DAY}, {"at": 6.9 * DAY}]
    assert choose_baseline(history, 7 * DAY) == {"at": 5 * DAY}
    assert choose_baseline(history[2:], 7 * DAY) == {"at": 6.9 * DAY}
    assert choose_baseline([], 7 * DAY) is None


def test_alerts_firing_longer_than_the_threshold_warn() -> None:
    now = 10 * DAY
    alerts = [{"name": "Old", "state": "active", "starts_at": now - 2 * DAY,
               "labels": {"severity": "critical"}},
              {"name": "Watchdog", "state": "active", "starts_at": now - 9 * DAY,
               "labels": {"severity": "none"}},
              {"name": "New", "state": "active", "starts_at": now - 60, "labels": {}}]
    result = cl.evaluate_alerts(alerts, now, {})
    assert result["status"] == "warn" and "firing > 24 h: Old" in result["evidence"]
    assert "2 started this week (New, Old)" in result["evidence"]
    assert cl.evaluate_alerts(alerts[1:], now, {})["status"] == "ok"


def test_wal_and_tsdb() -> None:
    assert cl.evaluate_wal("/v", 3 * GIB, {})["status"] == "warn"
    assert cl.evaluate_wal("/v", GIB, {})["status"] == "ok"
    assert cl.evaluate_wal("/v", None, {})["status"] == "skipped"
    samples = {"prometheus_tsdb_storage_blocks_bytes": [[{}, 95.0]],
               "prometheus_tsdb_retention_limit_bytes": [[{}, 100.0]]}
    assert cl.evaluate_tsdb(samples, "u", {})["status"] == "warn"
    assert cl.evaluate_tsdb({}, "u", {})["status"] == "fail"  # an agent, not a server


def test_index_cleanup_names_overdue_indices() -> None:
    decisions = [{"index": "logs-1", "action": "delete"}, {"index": "logs-2", "action": "keep"}]
    result = cl.evaluate_index_cleanup(decisions, "logs-*", 30)
    assert result["status"] == "warn" and "logs-1" in result["evidence"]
    assert "older_than_days=30" in result["hint"]
    assert cl.evaluate_index_cleanup(decisions[1:], "logs-*", 30)["status"] == "ok"


@pytest.mark.parametrize(("running", "latest", "status", "says"), [
    ("0.40.1", "0.40.1", "ok", "running"),
    ("v0.41.0", "0.40.1", "ok", "running"),
    ("0.40.1", "0.40.2", "warn", "patch release"),
    ("2.42.0+ds", "2.45.0", "warn", "3 minor"),
    ("1.9.9", "2.0.0", "warn", "major"),
    ("main", "1.0.0", "skipped", "cannot compare"),
])
def test_versions(running: str, latest: str, status: str, says: str) -> None:
    result = cl.compare_version("x", running, latest)
    assert result["status"] == status and says in result["evidence"]


def test_versions_and_patches_without_a_table_are_skipped() -> None:
    assert cl.evaluate_versions({"a": "1.0"}, {})[0]["status"] == "skipped"
    assert cl.evaluate_patches({"a": "1.0"}, {})["status"] == "skipped"
    result = cl.evaluate_patches({"a": "1.0.1", "b": "2.0.0"}, {"a": "1.0.3", "b": "2.1.0"})
    assert result["status"] == "warn" and "a 1.0.1 -> 1.0.3" in result["evidence"]
    assert "b " not in result["evidence"]  # a minor upgrade is not a missing patch


def test_resources_and_backup_age() -> None:
    assert cl.evaluate_resources({}, {}, {})["status"] == "warn"
    assert cl.evaluate_resources({"a": 9.0 * GIB}, {}, {})["status"] == "warn"
    assert cl.evaluate_resources({"a": GIB}, {"a": 0.5}, {})["status"] == "ok"
    now = 100 * DAY
    assert cl.evaluate_backup_age({}, now, {}, "q")["status"] == "fail"
    assert cl.evaluate_backup_age({"b": now - 8 * DAY}, now, {}, "q")["status"] == "fail"
    assert cl.evaluate_backup_age({"b": now - DAY}, now, {}, "q")["status"] == "ok"


def test_verdict_fails_on_fail_and_on_warn_only_when_strict() -> None:
    checks = [cl.check("a", "ok", ""), cl.check("b", "warn", ""), cl.check("c", "skipped", "")]
    assert cl.verdict(checks) == (False, "worst warn (1 ok, 1 warn, 1 skipped)")
    assert cl.verdict(checks, strict=True)[0] is True
    failed, message = cl.verdict([*checks, cl.check("d", "fail", "")])
    assert failed and message.endswith(": d")
    assert cl.worst([]) == "ok" and cl.worst(checks) == "warn"


def test_report_rows_one_per_cluster_and_check_worst_first() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    steps = (
        Step("playbook", "c1", "daily", t, t, "ok", checks=(Check("x", "ok"),
                                                             Check("y", "fail", "e", "h"))),
        Step("playbook", "c2", "daily", t, t, "ok", checks=(Check("x", "skipped", "why"),)),
    )
    journal = Journal("checklist-daily", "r", "failed", 1, t, t, False, "", {}, {}, {},
                      {"c1": "failed", "c2": "ok"}, steps)
    assert [(r["cluster"], r["check"], r["status"]) for r in check_rows(journal)] == [
        ("c1", "y", "fail"), ("c1", "x", "ok"), ("c2", "x", "skipped")]
    summary = check_summary(journal)
    assert summary["c1"]["worst"] == "fail" and summary["c2"] == {
        "worst": "skipped", "ok": 0, "warn": 0, "fail": 0, "skipped": 1}


def test_query_answers() -> None:
    kind, rows, _ = parse_answer({"status": "success", "data": {
        "resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1, "2"]}]}})
    assert kind == "vector" and rows == [{"labels": {"job": "a"}, "timestamp": 1, "value": "2"}]
    kind, rows, _ = parse_answer({"status": "success", "data": {"resultType": "scalar",
                                                                "result": [1, "3"]}})
    assert rows[0]["value"] == "3"
    with pytest.raises(QueryFailed, match="bad_data"):
        parse_answer({"status": "error", "errorType": "bad_data", "error": "parse error"})
