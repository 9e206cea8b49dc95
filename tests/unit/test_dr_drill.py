"""dr-drill without the lab: the verdict (RTO, RPO, integrity; the failed measure first), the
recovery objectives from the inventory (a missing one names where to set it), the production
refusal through the CLI (before anything is touched), the drill metrics and the alert rules
that read them (promtool, with mutated copies proving the rule tests bite)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.watchkeeper.platform.plugins.module_utils import dr
from prometheus_client.parser import text_string_to_metric_families

from runbooks.dr.dr_drill import DrDrillParams, targets
from runbooks.errors import EXIT_GATE, EXIT_USAGE, UsageError
from runbooks.inventory import load_inventory, parse_duration
from runbooks.metrics import record_drill
from tests.conftest import REPO, cli

ALERTS = REPO / "deploy" / "alerts"
RULES = ALERTS / "watchkeeper-dr.rules.yml"
RULE_TESTS = ALERTS / "watchkeeper-dr.test.yml"
TARGETS = {"rto": 900.0, "rpo": 86400.0}


# --------------------------------------------------------------------------- the verdict


def test_rto_and_rpo_come_from_the_recorded_timestamps() -> None:
    timeline = {"fault_injected": 1000.0, "detected": 1000.2, "recovery_started": 1003.0,
                "component_ready": 1010.0, "caught_up": 1012.5}
    verdict = dr.measure("opensearch-loss", timeline, rpo_point=400.0,
                         integrity=[("logs-a", True, "logs-a: 5 documents")], targets=TARGETS)
    assert verdict["passed"]
    assert verdict["rto"] == pytest.approx(12.5)
    assert verdict["rpo"] == pytest.approx(600.0)
    assert [c["status"] for c in verdict["checks"]] == ["ok", "ok", "ok"]
    assert dr.stage_times(timeline) == {"fault_injected": 0.0, "detected": 0.2,
                                        "recovery_started": 3.0, "component_ready": 10.0,
                                        "caught_up": 12.5}


def test_a_missed_target_fails_and_comes_first() -> None:
    timeline = {"fault_injected": 0.0, "caught_up": 30.0}
    verdict = dr.measure("opensearch-loss", timeline, rpo_point=-10.0,
                         integrity=[("logs-a", True, "ok")], targets={"rto": 1.0, "rpo": 60.0})
    assert not verdict["passed"]
    assert verdict["failed_first"] == "opensearch-loss RTO"
    first = verdict["checks"][0]
    assert first["status"] == "fail" and "RTO 30.0 s > target 1.0 s" in first["evidence"]


def test_integrity_fails_the_drill_even_within_the_targets() -> None:
    verdict = dr.measure("opensearch-loss", {"fault_injected": 0.0, "caught_up": 5.0}, 0.0,
                         [("logs-a", True, "ok"), ("logs-b", False, "logs-b: 3 restored, 5")],
                         TARGETS)
    assert not verdict["passed"]
    assert verdict["checks"][0]["name"] == "opensearch-loss integrity logs-b"


def test_a_read_that_never_succeeded_is_a_failed_rto_not_a_pass() -> None:
    verdict = dr.measure("opensearch-loss", {"fault_injected": 0.0}, 0.0,
                         [("logs-a", True, "ok")], TARGETS)
    assert not verdict["passed"]
    assert verdict["checks"][0]["evidence"].startswith("RTO not measured")


def test_nothing_compared_is_not_integrity() -> None:
    verdict = dr.measure("opensearch-loss", {"fault_injected": 0.0, "caught_up": 1.0}, 0.0,
                         [], TARGETS)
    assert not verdict["passed"]
    assert verdict["failed_first"] == "opensearch-loss integrity"


def test_drill_file_keeps_one_entry_per_scenario(tmp_path: Path) -> None:
    path = str(tmp_path / "drill.json")
    verdict = dr.measure("opensearch-loss", {"fault_injected": 0.0, "caught_up": 2.0}, -5.0,
                         [("logs-a", True, "ok")], TARGETS)
    entry = dr.document("d1", "opensearch-loss", TARGETS, verdict,
                        {"fault_injected": 0.0, "caught_up": 2.0}, {"indices": ["logs-a"]})
    dr.append(path, entry)
    drill = dr.append(path, entry)
    assert len(drill["scenarios"]) == 1 and drill["passed"]
    assert drill["scenarios"][0]["timeline"]["fault_injected"] == "1970-01-01T00:00:00.000Z"


# --------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), (90, 90), ("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800),
    ("1w", 604800), ("500ms", 0.5)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["15 minutes", "-5m", "0s", "m"])
def test_bad_durations_say_how_to_write_one(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def write_inventory(directory: Path, group_vars: dict[str, object]) -> Path:
    (directory / "group_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local"},
        "children": {"staging": {"hosts": {"logs-staging": {}}}}}}))
    (directory / "group_vars" / "staging.yml").write_text(yaml.safe_dump({
        "wk_role": "observability", "wk_opensearch_url": "http://127.0.0.1:9",
        "wk_receive_http_urls": ["http://127.0.0.1:9"],
        **group_vars}))
    return directory / "hosts.yml"


def test_objectives_come_from_the_group_and_e_overrides(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {
        "wk_environment": "staging", "wk_dr_rto_target": "15m", "wk_dr_rpo_target": "2h"}))
    cluster = inventory.cluster("logs-staging")
    assert targets(DrDrillParams(scenario="opensearch-loss"), cluster, inventory.groups) == {
        "rto": 900.0, "rpo": 7200.0}
    assert targets(DrDrillParams(scenario="opensearch-loss", rto_target="1s"), cluster,
                   inventory.groups)["rto"] == 1.0


def test_a_missing_objective_names_the_group_to_set_it_in(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {
        "wk_environment": "staging", "wk_dr_rto_target": "15m"}))
    with pytest.raises(UsageError, match=r"wk_dr_rpo_target is not set.*group_vars/staging.yml"):
        targets(DrDrillParams(scenario="opensearch-loss"),
                inventory.cluster("logs-staging"), inventory.groups)


def test_a_production_drill_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    """The inventory's OpenSearch URL is a closed port: a drill that went past the refusal
    would fail differently (the plan reads OpenSearch)."""
    inventory = write_inventory(tmp_path / "inv", {
        "wk_environment": "production", "wk_dr_rto_target": "15m", "wk_dr_rpo_target": "2h"})
    run_dir = tmp_path / "run"
    result = cli("run", "dr-drill", "-i", str(inventory), "-e", "scenario=opensearch-loss",
                 "--run-dir", str(run_dir), "--textfile-dir", str(tmp_path / "metrics"))
    assert result.returncode == EXIT_GATE, result.stdout + result.stderr
    journal = json.loads((run_dir / "journal.json").read_text())
    assert "refusing to drill production cluster(s) logs-staging" in journal["message"]
    assert "allow_production=true and --yes" in journal["message"]
    assert not [s for s in journal["steps"] if s["phase"] == "playbook"]

    # allow_production without --yes is still refused; a bad target is a usage error.
    again = cli("run", "dr-drill", "-i", str(inventory), "-e", "scenario=opensearch-loss",
                "-e", "allow_production=true", "--run-dir", str(tmp_path / "run2"),
                "--textfile-dir", str(tmp_path / "metrics"))
    assert again.returncode == EXIT_GATE
    bad = cli("run", "dr-drill", "-i", str(inventory), "-e", "scenario=opensearch-loss",
              "-e", "rto_target=soon", "--run-dir", str(tmp_path / "run3"))
    assert bad.returncode == EXIT_USAGE
    assert "rto_target" in bad.stdout + bad.stderr


# --------------------------------------------------------------------------- metrics, alerts


def read_metrics(path: Path) -> dict[tuple[str, str], float]:
    return {(f.name, s.labels["scenario"]): s.value
            for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def test_a_failed_drill_keeps_the_last_pass_and_records_its_measures(tmp_path: Path) -> None:
    passed = {"scenarios": [{"scenario": "opensearch-loss", "rto_seconds": 12.5,
                             "rpo_seconds": 600.0, "passed": True}]}
    failed = {"scenarios": [{"scenario": "opensearch-loss", "rto_seconds": 40.0,
                             "rpo_seconds": None, "passed": False}]}
    path = record_drill(passed, tmp_path)
    first = read_metrics(path)
    assert first[("watchkeeper_dr_rto_seconds", "opensearch-loss")] == 12.5
    assert first[("watchkeeper_dr_passed", "opensearch-loss")] == 1
    stamp = first[("watchkeeper_dr_last_pass_timestamp_seconds", "opensearch-loss")]
    second = read_metrics(record_drill(failed, tmp_path))
    assert second[("watchkeeper_dr_last_pass_timestamp_seconds", "opensearch-loss")] == stamp
    assert second[("watchkeeper_dr_passed", "opensearch-loss")] == 0
    assert second[("watchkeeper_dr_rto_seconds", "opensearch-loss")] == 40.0
    assert ("watchkeeper_dr_rpo_seconds", "opensearch-loss") not in second
    # The alert rules read exactly these metrics.
    text = RULES.read_text()
    for name in ("watchkeeper_dr_last_pass_timestamp_seconds", "watchkeeper_dr_passed"):
        assert name in text and any(n == name for n, _ in second)


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian ships promtool)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.prometheus
def test_the_drill_alert_rules_pass_promtool_and_show_each_alert_both_ways() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0 and "SUCCESS: 2 rules found" in checked.stdout, checked
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for c in t["alert_rule_test"]]
    for name in ("WatchkeeperDRDrillNotPassed", "WatchkeeperDRDrillFailed"):
        assert {bool(c["exp_alerts"]) for c in cases if c["alertname"] == name} == {True, False}


@pytest.mark.prometheus
@pytest.mark.parametrize("original, mutated", [
    ("> 8 * 86400", "> 10 * 86400"),
    ("for: 1h", "for: 5h"),
    ("(watchkeeper_dr_passed) == 0", "(watchkeeper_dr_passed) == 1"),
])
def test_the_drill_rule_tests_fail_when_a_rule_changes(
    tmp_path: Path, original: str, mutated: str
) -> None:
    text = RULES.read_text()
    assert original in text
    (tmp_path / RULES.name).write_text(text.replace(original, mutated, 1))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0 and "FAILED" in tested.stdout + tested.stderr
