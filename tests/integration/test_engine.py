"""The run contract through the CLI with real ansible-playbook runs: check mode, gates,
rollback, locks, interrupt, timeout, exit codes, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli

INVENTORY = REPO / "tests" / "fixtures" / "inventory"
FIXTURES = {"WATCHKEEPER_RUNBOOK_MODULES": "tests.fixtures.sample_runbooks"}


def _write(tmp_path: Path, state_env: dict[str, str], *extra: str, run: str = "run"):
    return cli("run", "fixture-write", "-i", str(INVENTORY), "--run-dir", str(tmp_path / run),
               "-e", f"target_dir={tmp_path / 'target'}", *extra, env={**FIXTURES, **state_env})


def _journal(tmp_path: Path, run: str = "run") -> dict:
    return json.loads((tmp_path / run / "journal.json").read_text())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    return path


def test_check_mode_predicts_with_diff_and_changes_nothing(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "--check", "--diff")
    assert result.returncode == 0, result.stderr
    assert list(target.iterdir()) == []
    journal = _journal(tmp_path)
    assert journal["check_mode"] is True
    writes = [s for s in journal["steps"] if s["name"] == "Write the cluster file"]
    assert {s["cluster"] for s in writes} == {"cluster-a", "cluster-b"}
    assert all(s["changed"] and s["diff_summary"].endswith("+1 -0") for s in writes), writes
    # Check mode takes no lock and runs no rollback.
    assert not any(s["phase"] == "rollback" for s in journal["steps"])


def test_apply_changes_each_cluster_passes_gates_and_releases_locks(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env)
    assert result.returncode == 0, result.stderr
    assert (target / "cluster-a.txt").read_text() == "owned by cluster-a\n"
    journal = _journal(tmp_path)
    phases = [s["phase"] for s in journal["steps"]]
    assert phases.index("pre-gate") < phases.index("playbook") < phases.index("post-gate")
    assert journal["clusters"] == {"cluster-a": "ok", "cluster-b": "ok"}
    locks = Path(state_env["WATCHKEEPER_STATE_DIR"]) / "locks"
    assert list(locks.glob("*.lock")) == []


def test_limit_runs_only_the_selected_cluster(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "--limit", "cluster-b")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["cluster-b.txt"]
    assert _journal(tmp_path)["clusters"] == {"cluster-b": "ok"}


def test_failed_step_runs_rollback_and_exits_1(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "-e", "fail_on=cluster-b")
    assert result.returncode == 1, result.stderr
    journal = _journal(tmp_path)
    assert journal["status"] == "failed"
    assert journal["clusters"]["cluster-b"] == "failed"
    assert "asked to fail on cluster-b" in journal["message"]
    rollback = [s for s in journal["steps"] if s["phase"] == "rollback"]
    assert rollback and all(s["status"] in ("ok", "changed") for s in rollback)
    assert (target / "cluster-b.rolled-back").is_file()
    assert not (target / "cluster-b.txt").exists()


def test_failed_post_gate_rolls_back_and_exits_3(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "-e", "corrupt=true")
    assert result.returncode == 3, result.stderr
    journal = _journal(tmp_path)
    gates = [s for s in journal["steps"] if s["phase"] == "post-gate"]
    assert gates and all(s["status"] == "failed" for s in gates)
    assert (target / "cluster-a.rolled-back").is_file()


def test_failed_pre_gate_changes_nothing_and_exits_3(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env)  # target dir does not exist
    assert result.returncode == 3, result.stderr
    assert "nothing was changed" in result.stdout + result.stderr
    journal = _journal(tmp_path)
    assert not any(s["phase"] == "playbook" for s in journal["steps"])


def test_bad_parameter_is_a_usage_error_naming_the_field(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "-e", "sleep_seconds=soon")
    assert result.returncode == 2
    assert "sleep_seconds" in result.stderr
    assert list(target.iterdir()) == []


def _start_long_run(tmp_path: Path, state_env: dict[str, str], run: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **FIXTURES, **state_env}
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "watchkeeper"), "run", "fixture-write", "-i",
         str(INVENTORY), "--run-dir", str(tmp_path / run), "-e",
         f"target_dir={tmp_path / 'target'}", "-e", "sleep_seconds=30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(predicate, what: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"waited {deadline_s}s for {what}")


def test_second_mutating_run_is_locked_then_ctrl_c_interrupts_with_rollback(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    first = _start_long_run(tmp_path, state_env, "first")
    try:
        _wait_for(lambda: (target / "cluster-a.txt").exists(), "the first run's change")
        second = _write(tmp_path, state_env, run="second")
        assert second.returncode == 4, second.stderr
        first_id = _journal_id_from_lock(state_env)
        assert f"locked by fixture-write run {first_id} since" in second.stderr
        # A read-only runbook is not blocked by the lock.
        ping = cli("run", "ping", "-i", str(INVENTORY), "--run-dir", str(tmp_path / "ping"),
                   env={**FIXTURES, **state_env})
        assert ping.returncode == 0, ping.stderr

        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, out + err
    journal = _journal(tmp_path, "first")
    assert journal["status"] == "interrupted"
    assert any(s["phase"] == "rollback" for s in journal["steps"])
    assert (target / "cluster-a.rolled-back").is_file()
    locks = Path(state_env["WATCHKEEPER_STATE_DIR"]) / "locks"
    assert list(locks.glob("*.lock")) == []


def _journal_id_from_lock(state_env: dict[str, str]) -> str:
    lock = Path(state_env["WATCHKEEPER_STATE_DIR"]) / "locks" / "cluster-a.lock"
    return str(json.loads(lock.read_text())["run_id"])


def test_timeout_ends_the_run_as_timeout(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    result = _write(tmp_path, state_env, "-e", "sleep_seconds=60", "--timeout", "5")
    assert result.returncode == 1, result.stderr
    journal = _journal(tmp_path)
    assert journal["status"] == "timeout"
    assert (target / "cluster-a.rolled-back").is_file()


def test_run_metrics_keep_last_success_across_a_failure(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    textfile = tmp_path / "textfile"
    ok = _write(tmp_path, state_env, "--textfile-dir", str(textfile), run="ok")
    assert ok.returncode == 0
    bad = _write(tmp_path, state_env, "--textfile-dir", str(textfile), "-e",
                 "fail_on=cluster-a", run="bad")
    assert bad.returncode == 1

    values: dict[tuple[str, str], float] = {}
    text = (textfile / "watchkeeper_fixture_write.prom").read_text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, sample.labels["cluster"])] = sample.value
    ok_end = _journal(tmp_path, "ok")["ended"]
    bad_end = _journal(tmp_path, "bad")["ended"]
    from datetime import datetime

    ts = lambda s: datetime.fromisoformat(s).timestamp()  # noqa: E731
    assert values[("watchkeeper_runbook_success", "cluster-a")] == 0
    assert values[("watchkeeper_runbook_success", "cluster-b")] == 1
    # cluster-a's last success is still the first run's end; cluster-b's is the second's.
    assert values[("watchkeeper_runbook_last_success_timestamp_seconds", "cluster-a")] == \
        pytest.approx(ts(ok_end), abs=0.01)
    assert values[("watchkeeper_runbook_last_success_timestamp_seconds", "cluster-b")] == \
        pytest.approx(ts(bad_end), abs=0.01)
    assert values[("watchkeeper_runbook_last_run_timestamp_seconds", "cluster-a")] == \
        pytest.approx(ts(bad_end), abs=0.01)
    assert values[("watchkeeper_runbook_duration_seconds", "cluster-a")] > 0


def test_a_runbook_missing_a_required_inventory_field_stops_before_running(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    result = cli("run", "fixture-needs-query", "-i", str(INVENTORY), "--run-dir",
                 str(tmp_path / "run"), env={**FIXTURES, **state_env})
    assert result.returncode == 2
    assert "cluster-a: wk_query_url: expected a value (runbook fixture-needs-query needs it)" \
        in result.stderr
    assert not (tmp_path / "run" / "ansible").exists()


def test_emergency_check_mode_exits_1_on_a_fault_and_yes_remedies_it(
    tmp_path: Path, target: Path, state_env: dict[str, str]
) -> None:
    # Shaped like receiver-down: the module reports its diagnosis as FAIL checks without
    # failing the task, and remedies unless in check mode (without --yes).
    marker = target / "cluster-a.down"
    marker.write_text("")

    def emergency(run: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return cli("run", "fixture-emergency", "-i", str(INVENTORY), "--run-dir",
                   str(tmp_path / run), "-e", f"target_dir={target}", *extra,
                   env={**FIXTURES, **state_env})

    result = emergency("check")
    assert result.returncode == 1, (result.stdout, result.stderr)
    journal = _journal(tmp_path, "check")
    assert journal["check_mode"] is True and journal["exit_code"] == 1
    assert journal["clusters"] == {"cluster-a": "failed", "cluster-b": "ok"}
    assert journal["message"].startswith("check mode found a fault, nothing was remedied:"
                                         " cluster-a: marker absent:"), journal["message"]
    assert marker.exists()  # check mode changed nothing

    result = emergency("yes", "--yes")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert not marker.exists()

    result = emergency("healthy")  # check mode again: nothing wrong, exit 0
    assert result.returncode == 0, (result.stdout, result.stderr)
