"""`watchkeeper run status` through the CLI against a real Prometheus Agent remote-writing into a
real Prometheus receiver (Debian's package)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import AGENT_PASSWORD, PromPair, cli

pytestmark = pytest.mark.prometheus


def _run_status(pair: PromPair, run_dir: Path, state_env: dict[str, str], *extra: str):
    return cli("run", "status", "-i", str(pair.inventory), "--run-dir", str(run_dir),
               "-e", "rate_window=2", *extra, env={**pair.env, **state_env})


def test_status_healthy_pair_succeeds_with_journal_and_reports(
    prom_pair: PromPair, tmp_path: Path, state_env: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    result = _run_status(prom_pair, run_dir, state_env)
    assert result.returncode == 0, result.stdout + result.stderr

    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["runbook"] == "status"
    assert journal["status"] == "successful"
    assert journal["clusters"] == {"k8s-cluster-01": "ok"}
    assert journal["inventory"]["digest"].startswith("sha256:")
    assert journal["params"] == {"rate_window": 2.0}
    steps = [s for s in journal["steps"] if s["phase"] == "playbook"]
    assert [s["name"] for s in steps] == [
        "Sample agent and receivers",
        "Sample again after the rate window",
        "Evaluate remote write and ingestion",
    ]
    for step in steps:
        assert step["cluster"] == "k8s-cluster-01"
        assert step["start"] <= step["end"]
        assert step["duration"] >= 0
    # The second sample waited for the rate window.
    assert steps[1]["duration"] >= 1.5
    checks = {c["name"]: c for c in steps[2]["checks"]}
    assert checks["agent ready"]["status"] == "ok"
    queue = checks["remote write receiver"]
    assert queue["status"] == "ok"
    delivered = float(queue["evidence"].split("delivered ")[1].split("/s")[0])
    assert delivered > 0, queue["evidence"]
    ingest = checks[f"receiver ingesting {prom_pair.receiver_url}"]
    assert ingest["status"] == "ok", ingest

    report = (run_dir / "report.md").read_text()
    assert "status: successful" in report
    assert "remote write receiver" in report
    assert "<h1>" in (run_dir / "report.html").read_text()
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    names = {case.get("name") for case in suite.iter("testcase")}
    assert "playbook: Evaluate remote write and ingestion: agent ready" in names
    assert (run_dir / "ansible" / "artifacts" / "main" / "job_events").is_dir()


def test_status_json_output_is_only_the_result(
    prom_pair: PromPair, tmp_path: Path, state_env: dict[str, str]
) -> None:
    result = _run_status(prom_pair, tmp_path / "run", state_env, "--output", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # nothing but JSON on stdout
    assert data["status"] == "successful"
    assert data["exit_code"] == 0
    assert data["clusters"] == {"k8s-cluster-01": "ok"}
    assert Path(data["journal"]).is_file()


def test_no_secret_value_in_any_file_of_the_run_dir(
    prom_pair: PromPair, tmp_path: Path, state_env: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    result = _run_status(prom_pair, run_dir, state_env, "-vv")
    assert result.returncode == 0, result.stderr
    # The agent answered only because the password reached it...
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "successful"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    # ...and it is nowhere on disk (ansible-runner writes the environment to artifacts).
    leaking = [str(p) for p in files if AGENT_PASSWORD.encode() in p.read_bytes()]
    assert leaking == []
    assert AGENT_PASSWORD not in result.stdout + result.stderr
    command = (run_dir / "ansible" / "artifacts" / "main" / "command").read_text()
    assert "WK_TEST_AGENT_PASSWORD" in command and "REDACTED" in command


def test_missing_secret_names_the_variable_to_set(
    prom_pair: PromPair, tmp_path: Path, state_env: dict[str, str]
) -> None:
    result = cli("run", "status", "-i", str(prom_pair.inventory), "--run-dir",
                 str(tmp_path / "run"), env={**state_env, "WK_TEST_AGENT_PASSWORD": ""})
    assert result.returncode == 1
    assert "export WK_TEST_AGENT_PASSWORD" in result.stdout + result.stderr


def test_stopped_receiver_fails_status_with_reason(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, state_env: dict[str, str]
) -> None:
    from tests.conftest import start_prom_pair

    pair = start_prom_pair(tmp_path_factory.mktemp("prom-down"))
    try:
        pair.receiver.stop()
        run_dir = tmp_path / "run"
        result = _run_status(pair, run_dir, state_env)
        assert result.returncode == 1, result.stdout + result.stderr
        journal = json.loads((run_dir / "journal.json").read_text())
        assert journal["status"] == "failed"
        assert journal["clusters"] == {"k8s-cluster-01": "failed"}
        evaluate = next(s for s in journal["steps"] if s["name"].startswith("Evaluate"))
        checks = {c["name"]: c for c in evaluate["checks"]}
        queue = checks["remote write receiver"]
        assert queue["status"] == "fail"
        assert "connection refused" in queue["evidence"]
        assert queue["hint"]
        assert checks[f"receiver ready {pair.receiver_url}"]["status"] == "fail"
        assert "connection refused" in (run_dir / "report.md").read_text()
        suite = ET.parse(run_dir / "junit.xml").getroot()
        assert int(suite.get("failures", "0")) >= 2
    finally:
        pair.stop()
