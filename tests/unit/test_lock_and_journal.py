"""Lock files, redaction and JUnit rendering."""

from __future__ import annotations

import os
import socket
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbooks.errors import LockedError
from runbooks.journal import Check, Journal, Redactor, Step
from runbooks.lock import FileLock, Holder
from runbooks.report import render_junit, render_markdown


def holder(run_id: str, pid: int | None = None) -> Holder:
    return Holder("scale-receivers", run_id, datetime.now(UTC), socket.gethostname(),
                  pid or os.getpid())


def test_second_holder_is_refused_with_who_and_since(tmp_path: Path):
    first = FileLock("c1", holder("run-1"), root=tmp_path)
    first.acquire()
    with pytest.raises(LockedError, match=r"locked by scale-receivers run run-1 since 20"):
        FileLock("c1", holder("run-2"), root=tmp_path).acquire()
    first.release()
    FileLock("c1", holder("run-2"), root=tmp_path).acquire()


def test_lock_of_a_dead_holder_is_taken_over(tmp_path: Path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    FileLock("c1", holder("run-dead", pid=dead.pid), root=tmp_path).acquire()
    FileLock("c1", holder("run-new"), root=tmp_path).acquire()  # no LockedError
    assert "run-new" in (tmp_path / "c1.lock").read_text()


def test_expired_lock_is_taken_over(tmp_path: Path):
    FileLock("c1", holder("run-old"), ttl=-1, root=tmp_path).acquire()
    FileLock("c1", holder("run-new"), root=tmp_path).acquire()


def test_release_never_removes_someone_elses_lock(tmp_path: Path):
    mine = FileLock("c1", holder("run-1"), root=tmp_path)
    mine.acquire()
    FileLock("c1", holder("run-2"), root=tmp_path).release()
    assert (tmp_path / "c1.lock").exists()


def test_redactor_scrubs_values_keys_and_files(tmp_path: Path):
    redactor = Redactor(["s3cr3t-value", "abc"])  # too short values are not scrubbed blindly
    assert redactor.text("token=s3cr3t-value;") == "token=***REDACTED***;"
    assert redactor.data({"password": "whatever", "user": "bob"}) == {
        "password": "***REDACTED***", "user": "bob"}
    (tmp_path / "a").write_text("x s3cr3t-value y")
    (tmp_path / "b").write_text("clean")
    assert redactor.scrub_tree(tmp_path) == 1
    assert "s3cr3t-value" not in (tmp_path / "a").read_text()


def journal_with(steps: tuple[Step, ...]) -> Journal:
    t0 = datetime.now(UTC)
    return Journal(runbook="status", run_id="r1", status="failed", exit_code=1, started=t0,
                   ended=t0 + timedelta(seconds=3), check_mode=False, limit="",
                   params={}, inventory={"path": "inv", "digest": "sha256:x"},
                   versions={"watchkeeper": "0", "ansible-core": "0", "ansible-runner": "0"},
                   clusters={"c1": "failed", "c2": "ok"}, steps=steps)


def test_junit_has_a_case_per_cluster_and_step_or_check():
    t0 = datetime.now(UTC)
    steps = (
        Step("playbook", "c1", "Sample", t0, t0, "ok"),
        Step("playbook", "c2", "Sample", t0, t0, "ok"),
        Step("playbook", "c1", "Evaluate", t0, t0, "failed", message="boom",
             checks=(Check("agent ready", "ok"), Check("remote write", "fail", "refused", "fix"))),
    )
    suite = ET.fromstring(render_junit(journal_with(steps)))
    cases = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert ("status.c1", "playbook: Sample") in cases
    assert ("status.c2", "playbook: Sample") in cases
    assert ("status.c1", "playbook: Evaluate: remote write") in cases
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    report = render_markdown(journal_with(steps))
    assert "remote write: refused (hint: fix)" in report
