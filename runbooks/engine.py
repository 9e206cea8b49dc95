"""The engine: the only module that calls ansible-runner.

It runs one playbook with an inventory, a limit, extra vars, check mode, diff, forks, a timeout
and a cancellation flag, and turns ansible-runner's events into journal Steps as they arrive.
A failed playbook is a status on the outcome, never an exception.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from runbooks.collection import collection_root, collections_path
from runbooks.journal import Check, Phase, RunStatus, Step, StepStatus, now

log = logging.getLogger(__name__)

_RESULT_EVENTS: dict[str, StepStatus] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


@dataclass(frozen=True)
class PlaybookRun:
    """What to run: a playbook and everything ansible-playbook needs for it."""

    playbook: Path
    inventory: Path
    private_data_dir: Path
    ident: str
    phase: Phase = "playbook"
    limit: str = ""
    extravars: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    diff: bool = False
    forks: int = 10
    timeout: int | None = None
    envvars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PlaybookOutcome:
    """How the playbook ended. `status` follows ansible-runner (successful / failed / timeout /
    canceled); `steps` are the task results per cluster in the order they finished."""

    status: RunStatus
    rc: int
    steps: tuple[Step, ...]
    artifacts: Path


def _parse_time(value: str | None) -> datetime:
    if not value:
        return now()
    return datetime.fromisoformat(value)


def diff_summary(diff: Any) -> str:
    """A one-line summary of Ansible's diff payload: files and lines added/removed."""
    items = diff if isinstance(diff, list) else [diff]
    parts: list[str] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if "prepared" in item:
            text = str(item["prepared"])
            added = sum(1 for line in text.splitlines() if line.startswith("+"))
            removed = sum(1 for line in text.splitlines() if line.startswith("-"))
            parts.append(f"+{added} -{removed}")
            continue
        before, after = item.get("before", ""), item.get("after", "")
        if not isinstance(before, str):
            before = json.dumps(before, indent=1, sort_keys=True, default=str)
        if not isinstance(after, str):
            after = json.dumps(after, indent=1, sort_keys=True, default=str)
        lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""))
        added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
        removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
        header = item.get("after_header") or item.get("before_header") or ""
        if added or removed:
            parts.append(f"{header} +{added} -{removed}".strip())
    return "; ".join(parts)


def _checks(res: Mapping[str, Any]) -> tuple[Check, ...]:
    raw = res.get("checks")
    if not isinstance(raw, list):
        return ()
    checks = []
    for item in raw:
        if isinstance(item, Mapping) and item.get("name"):
            status = item.get("status", "fail")
            checks.append(
                Check(
                    name=str(item["name"]),
                    status=status if status in ("ok", "warn", "fail", "skipped") else "fail",
                    evidence=str(item.get("evidence", "")),
                    hint=str(item.get("hint", "")),
                )
            )
    return tuple(checks)


def _message(res: Mapping[str, Any], status: StepStatus) -> str:
    if res.get("_ansible_no_log") or res.get("censored"):
        return str(res.get("censored", "output hidden (no_log)"))
    msg = res.get("msg") or res.get("message") or ""
    if not msg and status == "skipped":
        msg = res.get("skip_reason", "")
    if not msg and status == "failed" and res.get("module_stderr"):
        lines = str(res["module_stderr"]).strip().splitlines()
        msg = lines[-1] if lines else ""
    return str(msg)


def event_to_step(event: Mapping[str, Any], phase: Phase) -> Step | None:
    """Turn one ansible-runner event into a Step, or None for events that are not results."""
    status = _RESULT_EVENTS.get(str(event.get("event")))
    if status is None:
        return None
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    changed = bool(res.get("changed"))
    if status == "ok" and changed:
        status = "changed"
    return Step(
        phase=phase,
        cluster=str(data.get("host") or "-"),
        name=str(data.get("task") or data.get("task_action") or "?"),
        start=_parse_time(data.get("start")),
        end=_parse_time(data.get("end")),
        status=status,
        changed=changed,
        diff_summary=diff_summary(res.get("diff")) if "diff" in res else "",
        message=_message(res, status),
        checks=_checks(res),
    )


def _error_tail(stdout: Path, lines: int = 3) -> str:
    """The last ERROR lines ansible-playbook printed (or its last lines)."""
    try:
        text = stdout.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in text if "ERROR" in line]
    tail = errors[-lines:] if errors else [line.strip() for line in text if line.strip()][-lines:]
    return " | ".join(tail)


def _close_without_delay() -> None:
    """ansible-runner closes its pexpect child only after the child exited (its loop runs
    while the child is alive, then reads to EOF), and ptyprocess's close() then sleeps
    `delayafterclose` (0.1 s) to "give the kernel time" to report an exit it has already
    reported: a tenth of a second off every playbook (two per run with a rollback). The ptys
    pexpect spawns here close without that sleep; a child still alive at close is terminated
    as before (ptyprocess's terminate, with its own delays). Idempotent."""
    from pexpect import pty_spawn

    original = pty_spawn.spawn._spawnpty
    if getattr(original, "watchkeeper", False):
        return

    def spawnpty(self: Any, args: Any, **kwargs: Any) -> Any:
        ptyproc = original(self, args, **kwargs)
        ptyproc.delayafterclose = 0
        return ptyproc

    spawnpty.watchkeeper = True  # type: ignore[attr-defined]
    pty_spawn.spawn._spawnpty = spawnpty


def run_playbook(
    run: PlaybookRun,
    on_step: Callable[[Step], None],
    cancel: threading.Event | None = None,
    on_task: Callable[[str], None] | None = None,
) -> PlaybookOutcome:
    """Run one playbook to its end (or until cancelled / timed out). `on_task` hears the name
    of each task as it starts (what a Ctrl-C interrupts)."""
    import ansible_runner  # the one import of ansible_runner in watchkeeper

    _close_without_delay()
    run.private_data_dir.mkdir(parents=True, exist_ok=True)
    steps: list[Step] = []
    current = [""]  # the task that started last

    def handle(event: dict[str, Any]) -> bool:
        # Keep this cheap: a slow handler stalls the run (pexpect timeout).
        if event.get("event") == "playbook_on_task_start":
            current[0] = str((event.get("event_data") or {}).get("task") or "")
            if on_task is not None:
                on_task(current[0])
            return True
        step = event_to_step(event, run.phase)
        if step is not None:
            steps.append(step)
            on_step(step)
        return True  # False would drop the event from the artifacts

    cmdline = []
    if run.check:
        cmdline.append("--check")
    if run.diff:
        cmdline.append("--diff")
    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        # Modules run on the controller with the interpreter watchkeeper runs in, which has
        # the libraries they import; interpreter discovery would pick a random python3.
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        # ansible-playbook must be the one installed beside this interpreter.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        **run.envvars,
    }
    log.debug("running %s (ident %s) limit=%r check=%s",
              run.playbook, run.ident, run.limit, run.check)
    started = now()
    runner = ansible_runner.run(
        private_data_dir=str(run.private_data_dir),
        project_dir=str(collection_root() / "playbooks"),
        playbook=str(run.playbook),
        inventory=str(run.inventory),
        ident=run.ident,
        limit=run.limit or None,
        extravars=dict(run.extravars),
        cmdline=" ".join(cmdline) or None,
        forks=run.forks,
        timeout=run.timeout,
        envvars=envvars,
        event_handler=handle,
        cancel_callback=(lambda: cancel.is_set()) if cancel is not None else None,
        quiet=True,
        suppress_env_files=False,
    )
    status = str(runner.status)
    if status not in ("successful", "failed", "timeout", "canceled"):
        status = "failed"
    artifacts = run.private_data_dir / "artifacts" / run.ident
    if status != "successful" and not any(s.failed for s in steps):
        # A parse error, a missing plugin or a kill produces no task event: record the cause
        # (for a cancel, the task it stopped: its raw output says nothing more).
        if status == "canceled":
            message = ("stopped by the interrupt" + (f" during task {current[0]!r}"
                                                     if current[0] else ""))
        else:
            message = _error_tail(artifacts / "stdout") or f"ended {status}"
        failure = Step(run.phase, "-", f"ansible-playbook {run.playbook.name}", started, now(),
                       "interrupted" if status == "canceled" else "failed", message=message)
        steps.append(failure)
        on_step(failure)
    return PlaybookOutcome(
        status=status,  # type: ignore[arg-type]
        rc=int(runner.rc if runner.rc is not None else -1),
        steps=tuple(steps),
        artifacts=artifacts,
    )
