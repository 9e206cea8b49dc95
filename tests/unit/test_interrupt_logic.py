"""What a Ctrl-C does, by where the run is (runbooks.execute.Interrupt), and how an interrupted
run says so (interrupted_summary) from the steps it recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runbooks.execute import Interrupt, interrupted_summary
from runbooks.journal import Step

T = datetime(2025, 1, 1, tzinfo=UTC)


def pressed(phase: str, rollback: bool = True, times: int = 1) -> tuple[Interrupt, list[str]]:
    interrupt = Interrupt()
    interrupt.phase, interrupt.step, interrupt.rollback = phase, "the step", rollback
    return interrupt, [interrupt.press() for _ in range(times)]


@pytest.mark.parametrize(("phase", "rollback", "said"), [
    ("pre-gate", True, ["interrupt: stopping before anything changes"]),
    ("playbook", True, ["interrupt: stopping the playbook; the rollback will still run"]),
    ("playbook", False, ["interrupt: stopping the playbook; this runbook has no rollback"]),
    ("post-gate", True, ["interrupt: the change is done; finishing its checks; Ctrl-C again to"
                         " stop them and roll back"]),
    ("rollback", True, ["interrupt: the rollback is running and finishes; it is not stopped"]),
])
def test_the_first_ctrl_c(phase: str, rollback: bool, said: list[str]) -> None:
    interrupt, got = pressed(phase, rollback)
    assert got == said
    assert interrupt.cancel.is_set() and not interrupt.again.is_set()
    assert interrupt.finishing_checks == (phase == "post-gate")


def test_a_second_ctrl_c_stops_the_checks_only_after_the_change() -> None:
    interrupt, said = pressed("post-gate", times=2)
    assert said[1] == "interrupt again: stopping the checks; rolling back"
    assert interrupt.again.is_set()
    assert interrupt.record() == {"presses": 2, "phase": "post-gate", "step": "the step",
                                  "second_phase": "post-gate", "second_step": "the step"}
    interrupt, said = pressed("playbook", times=2)
    assert said[1] == "already stopping; waiting for the rollback to finish"
    assert not interrupt.again.is_set()


def step(phase: str, cluster: str, status: str, message: str = "") -> Step:
    return Step(phase, cluster, "task", T, T, status, message=message)  # type: ignore[arg-type]


def test_the_summary_names_the_step_and_what_the_rollback_restored() -> None:
    interrupt, _ = pressed("playbook")
    steps = [step("playbook", "-", "interrupted", "stopped by the interrupt"),
             step("rollback", "obs", "changed", "restored 3 replicas and the ring")]
    assert interrupted_summary(interrupt, steps) == (
        "interrupted by the user (Ctrl-C) during the playbook, at 'the step'; rolled back:"
        " obs: restored 3 replicas and the ring")
    steps[1] = step("rollback", "obs", "failed", "API server unreachable")
    assert interrupted_summary(interrupt, steps).endswith(
        "; the rollback FAILED: obs: task: API server unreachable")
    interrupt, _ = pressed("pre-gate")
    assert interrupted_summary(interrupt, []).endswith("; nothing was changed")
