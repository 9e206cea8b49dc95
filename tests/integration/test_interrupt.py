"""Ctrl-C through the real CLI (SIGINT to the `watchkeeper` process) during real
ansible-playbook runs of the fixture runbook: during the playbook it stops it and rolls back;
after the change, a first Ctrl-C lets the post-gates finish and says so, a second stops them and
rolls back. The journal, the reports and the summary say who interrupted the run, where, and
what the rollback restored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.test_engine import FIXTURES, INVENTORY, _wait_for

FINISHING = ("interrupt: the change is done; finishing its checks; Ctrl-C again to stop them"
             " and roll back")


class Run:
    """A `watchkeeper run fixture-write` in the background; its stderr read as it comes."""

    def __init__(self, tmp_path: Path, state_env: dict[str, str], *extra: str) -> None:
        self.run_dir = tmp_path / "run"
        env = {**os.environ, "PYTHONPATH": str(REPO), **FIXTURES, **state_env}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "watchkeeper"), "run", "fixture-write", "-i",
             str(INVENTORY), "--run-dir", str(self.run_dir), "-e",
             f"target_dir={tmp_path / 'target'}", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.process.stdout, self.out),
                                              (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.err)

    def interrupt(self, then_wait_for: str) -> None:
        """One Ctrl-C; returns once the run has printed what it does about it (a second
        signal sent before the first is handled would merge with it)."""
        self.process.send_signal(signal.SIGINT)
        _wait_for(lambda: self.said(then_wait_for), f"{then_wait_for!r} on stderr", 30)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        for reader in self.readers:
            reader.join(5)
        return self.process.returncode, "".join(self.out), "".join(self.err)

    def journal(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "journal.json").read_text())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "target"
    path.mkdir()
    return path


def test_one_ctrl_c_after_the_change_lets_its_checks_finish_and_says_so(
        tmp_path: Path, target: Path, state_env: dict[str, str]) -> None:
    run = Run(tmp_path, state_env, "-e", "gate_sleep_seconds=3")
    _wait_for(lambda: (target / "cluster-a.gate-started").exists(), "the post-gate")
    run.interrupt(then_wait_for=FINISHING)
    code, out, err = run.finish(timeout=120)
    assert code == 0, out + err
    journal = run.journal()
    assert journal["status"] == "successful"
    gates = [s for s in journal["steps"] if s["phase"] == "post-gate"]
    assert [(s["cluster"], s["status"]) for s in gates] == [("cluster-a", "ok"),
                                                           ("cluster-b", "ok")]
    assert not any(s["phase"] == "rollback" for s in journal["steps"])
    assert (target / "cluster-a.txt").is_file()  # the verified change stays
    assert journal["interrupt"] == {"presses": 1, "phase": "post-gate",
                                    "step": "file written on cluster-a"}
    assert "its checks finished and passed" in journal["message"]


def test_a_second_ctrl_c_stops_the_checks_and_rolls_back(
        tmp_path: Path, target: Path, state_env: dict[str, str]) -> None:
    run = Run(tmp_path, state_env, "-e", "gate_sleep_seconds=120")
    _wait_for(lambda: (target / "cluster-a.gate-started").exists(), "the post-gate")
    run.interrupt(then_wait_for=FINISHING)
    started = time.monotonic()
    run.interrupt(then_wait_for="interrupt again: stopping the checks; rolling back")
    code, out, err = run.finish(timeout=90)
    assert code == 130, out + err
    assert time.monotonic() - started < 90  # the 120 s check was not waited for
    journal = run.journal()
    assert journal["status"] == "interrupted" and journal["exit_code"] == 130
    stopped = [s for s in journal["steps"] if s["phase"] == "post-gate"]
    assert [(s["name"], s["status"]) for s in stopped] == [("post-gates stopped",
                                                            "interrupted")], stopped
    assert stopped[0]["message"] == "stopped by Ctrl-C while checking file written on cluster-a"
    rollback = [s for s in journal["steps"] if s["phase"] == "rollback"]
    assert rollback and all(s["status"] in ("ok", "changed") for s in rollback)
    assert (target / "cluster-a.rolled-back").is_file()
    assert not (target / "cluster-a.txt").exists()
    assert journal["clusters"] == {"cluster-a": "rolled back", "cluster-b": "rolled back"}
    assert journal["message"].startswith(
        "interrupted by the user (Ctrl-C twice) while checking the change, at 'file written on"
        " cluster-a'; rolled back: cluster-a: removed cluster-a.txt"), journal["message"]
    assert journal["interrupt"]["presses"] == 2


def test_ctrl_c_during_the_playbook_reports_who_where_and_what_the_rollback_restored(
        tmp_path: Path, target: Path, state_env: dict[str, str]) -> None:
    run = Run(tmp_path, state_env, "-e", "sleep_seconds=30")
    _wait_for(lambda: (target / "cluster-b.txt").exists(), "the change")
    _wait_for(lambda: sum("Write the cluster file" in line for line in run.err) == 2,
              "the first task's results")
    time.sleep(2)  # ansible-playbook has started the next task, the 30 s wait
    run.interrupt(then_wait_for="interrupt: stopping the playbook; the rollback will still run")
    code, out, err = run.finish(timeout=120)
    assert code == 130, out + err
    journal = run.journal()
    assert journal["status"] == "interrupted"
    assert journal["clusters"] == {"cluster-a": "rolled back", "cluster-b": "rolled back"}
    assert journal["interrupt"] == {"presses": 1, "phase": "playbook",
                                    "step": "Wait (simulates a long step)"}
    expected = ("interrupted by the user (Ctrl-C) during the playbook, at 'Wait (simulates a"
                " long step)'; rolled back: cluster-a: removed cluster-a.txt, the cluster is as"
                " before the run; cluster-b: removed cluster-b.txt, the cluster is as before the"
                " run")
    assert journal["message"] == expected
    stopped = next(s for s in journal["steps"] if s["status"] == "interrupted")
    assert stopped["message"] == "stopped by the interrupt during task 'Wait (simulates a long" \
        " step)'"
    assert (target / "cluster-a.rolled-back").is_file()

    report = (run.run_dir / "report.md").read_text()
    head = report.split("## Steps")[0]
    assert "PLAY [" not in report and "TASK [" not in report and "****" not in report
    assert f"> {expected}" in head
    assert "| cluster-a | rolled back |" in head
    assert "**interrupted** (exit 130)" in head
    assert expected in (run.run_dir / "report.html").read_text()
    assert json.loads((run.run_dir / "report.json").read_text())["clusters"] == \
        journal["clusters"]
    # The summary line and the message printed at the end say the same.
    assert "interrupted (exit 130)" in out and "cluster-a=rolled back" in out
    assert expected in " ".join(line.strip() for line in err.splitlines()), err
