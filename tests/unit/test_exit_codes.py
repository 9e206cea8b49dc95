"""The run's exit code (runbooks.execute.run_outcome) over the steps a run recorded.

The steps are made by the engine's own parser (event_to_step) from ansible-runner events shaped
as the emergency runbooks' tasks report them: receiver-down's module and the diagnose module
(with fail_on_problem false) end their task ok, their findings in `checks`."""

from __future__ import annotations

from typing import Any

import pytest

from runbooks.engine import event_to_step
from runbooks.errors import EXIT_FAILED, EXIT_GATE, EXIT_INTERRUPTED, EXIT_OK
from runbooks.execute import _summary, run_outcome
from runbooks.journal import Step

START, END = "2025-01-01T10:00:00+00:00", "2025-01-01T10:00:02+00:00"


def step(host: str, task: str, res: dict[str, Any], event: str = "runner_on_ok") -> Step:
    made = event_to_step({"event": event, "event_data": {
        "host": host, "task": task, "start": START, "end": END, "res": res}}, "playbook")
    assert made is not None
    return made


def receiver_down_check_mode() -> list[Step]:
    """receiver-down without --yes: thanos_receiver_recover in check mode found a receiver
    not Ready and returns the plan (changed, not failed)."""
    return [step("observability", "Diagnose and remediate receivers that are down", {
        "changed": True,
        "msg": "diagnosis: thanos-receive-2 Running, not Ready; would: restart thanos-receive-2",
        "checks": [{"name": "thanos-receive-2 Ready", "status": "fail",
                    "evidence": "Running, not Ready; restarts 3; in ring True; no events",
                    "hint": "restart it; if it stays down, take it out of the ring"}]})]


def remote_write_failing_check_mode() -> list[Step]:
    """remote-write-failing without --yes: the diagnosis names a wrong URL (a warn and a fail
    among ok findings), the re-point and the restart report what they would do."""
    return [
        step("k8s-cluster-01", "Diagnose the agent's remote write", {
            "changed": False, "msg": "most likely: wrong remote-write URL",
            "checks": [
                {"name": "remote-write URL", "status": "fail",
                 "evidence": "the agent runs http://wrong:19291/api/v1/receive"},
                {"name": "queue shards", "status": "warn", "evidence": "at max"},
                {"name": "agent Ready", "status": "ok", "evidence": "Ready"}]}),
        step("k8s-cluster-01", "Re-point the agent's remote write to the inventory's URL",
             {"changed": True, "msg": "would patch monitoring/prometheus-agent-config"}),
        step("k8s-cluster-02", "Diagnose the agent's remote write", {
            "changed": False, "msg": "the agent delivers",
            "checks": [{"name": "agent Ready", "status": "ok", "evidence": "Ready"}]}),
    ]


@pytest.mark.parametrize("steps", [receiver_down_check_mode(), remote_write_failing_check_mode()],
                         ids=["receiver-down", "remote-write-failing"])
def test_a_fault_found_in_check_mode_exits_1(steps: list[Step]) -> None:
    assert run_outcome("successful", False, True, steps) == ("failed", EXIT_FAILED)
    message = _summary(steps, "failed", check=True)
    assert message.startswith("check mode found a fault, nothing was remedied:"), message


def test_the_same_fault_with_yes_is_left_to_the_remedy_and_its_verification() -> None:
    # Out of check mode the diagnosis is what gets remedied: the verify task and the
    # post-gates decide (a failed verification fails the playbook, a failed gate exits 3).
    steps = receiver_down_check_mode()
    assert run_outcome("successful", False, False, steps) == ("successful", EXIT_OK)
    assert run_outcome("successful", True, False, steps) == ("failed", EXIT_GATE)
    assert run_outcome("failed", False, False, steps) == ("failed", EXIT_FAILED)


def test_check_mode_without_a_fault_exits_0() -> None:
    healthy = [step("observability", "Diagnose and remediate receivers that are down", {
        "changed": False, "msg": "all 3 receivers Ready and in the ring: nothing to do",
        "checks": []}),
        step("k8s-cluster-01", "Diagnose the agent's remote write", {
            "checks": [{"name": "queue shards", "status": "warn", "evidence": "at max"},
                       {"name": "agent Ready", "status": "ok", "evidence": "Ready"}]}),
        step("k8s-cluster-02", "Verify the agent delivers", {"skip_reason": "check mode"},
             event="runner_on_skipped")]
    assert run_outcome("successful", False, True, healthy) == ("successful", EXIT_OK)


def test_a_fault_in_a_gate_step_is_not_a_playbook_finding() -> None:
    # Only the playbook's findings count; a gate decides through gate_failed.
    gate = step("observability", "steady state", {"checks": [
        {"name": "x", "status": "fail", "evidence": "y"}]})
    pre_gate = Step("pre-gate", gate.cluster, gate.name, gate.start, gate.end, "ok",
                    checks=gate.checks)
    assert run_outcome("successful", False, True, [pre_gate]) == ("successful", EXIT_OK)


@pytest.mark.parametrize("status,code", [("failed", EXIT_FAILED), ("timeout", EXIT_FAILED),
                                         ("interrupted", EXIT_INTERRUPTED),
                                         ("canceled", EXIT_FAILED)])
def test_a_playbook_that_did_not_succeed_keeps_its_status(status: Any, code: int) -> None:
    assert run_outcome(status, False, True, receiver_down_check_mode()) == (status, code)
