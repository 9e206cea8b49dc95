"""The journal: the typed, JSON-serialisable record of one run.

Every step (validation, gates, playbook tasks per cluster, rollback) is recorded with start, end,
duration and status. The journal is written even when a run fails before the playbook starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Phase = Literal["validate", "lock", "pre-gate", "playbook", "post-gate", "rollback"]
StepStatus = Literal["ok", "changed", "failed", "skipped", "unreachable", "interrupted"]
CheckStatus = Literal["ok", "warn", "fail", "skipped"]
RunStatus = Literal["successful", "failed", "timeout", "canceled", "interrupted"]

REDACTED = "***REDACTED***"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Check:
    """One check inside a step (a checklist item): status, evidence and a hint when not ok."""

    name: str
    status: CheckStatus
    evidence: str = ""
    hint: str = ""


@dataclass(frozen=True)
class Step:
    """One unit of work on one cluster ("-" for work that spans clusters)."""

    phase: Phase
    cluster: str
    name: str
    start: datetime
    end: datetime
    status: StepStatus
    changed: bool = False
    diff_summary: str = ""
    message: str = ""
    checks: tuple[Check, ...] = ()

    @property
    def duration(self) -> float:
        return round((self.end - self.start).total_seconds(), 3)

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "unreachable", "interrupted")


@dataclass(frozen=True)
class Journal:
    """The whole run."""

    runbook: str
    run_id: str
    status: RunStatus
    exit_code: int
    started: datetime
    ended: datetime
    check_mode: bool
    limit: str
    params: Mapping[str, Any]
    inventory: Mapping[str, str]
    versions: Mapping[str, str]
    clusters: Mapping[str, str]
    steps: tuple[Step, ...]
    message: str = ""
    run_dir: str = ""
    #: Clusters the runbook does not apply to (Runbook.applies_to), each with why.
    left_out: Mapping[str, str] = field(default_factory=dict)
    #: Ctrl-C: how many presses, the phase and step of the first (and of a second that
    #: stopped the post-gates); {} without one.
    interrupt: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return round((self.ended - self.started).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        def encode(obj: Any) -> Any:
            if isinstance(obj, datetime):
                return obj.isoformat()
            if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
                data = {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
                if isinstance(obj, Step | Journal):
                    data["duration"] = obj.duration
                return data
            if isinstance(obj, Mapping):
                return {str(k): encode(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [encode(v) for v in obj]
            return obj

        result: dict[str, Any] = encode(self)
        return result

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str))
        tmp.replace(path)


def cluster_outcomes(clusters: Iterable[str], steps: Sequence[Step]) -> dict[str, str]:
    """Per cluster: `failed` if any of its steps failed, `ok` if it ran, else `not-run`."""
    outcome = {name: "not-run" for name in clusters}
    for step in steps:
        if step.cluster not in outcome:
            continue
        if step.failed:
            outcome[step.cluster] = "failed"
        elif outcome[step.cluster] == "not-run":
            outcome[step.cluster] = "ok"
    return outcome


class Redactor:
    """Replaces known secret values, and values of secret-looking keys, with REDACTED."""

    _SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|credential)", re.I)

    def __init__(self, values: Iterable[str] = ()):
        # Longest first so a secret containing another is replaced whole.
        self.values = sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, REDACTED)
        return text

    def data(self, obj: Any, key: str = "") -> Any:
        if key and self._SECRET_KEY.search(key) and isinstance(obj, str | int | float):
            return REDACTED
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {k: self.data(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj

    def scrub_tree(self, root: Path) -> int:
        """Rewrite every file under root that contains a secret value; returns files changed.

        The last line of defence: ansible-runner writes the whole process environment (which
        holds the secrets the references point at) into artifacts/<ident>/command.
        """
        if not self.values:
            return 0
        needles = [v.encode() for v in self.values]
        changed = 0
        for path in root.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            raw = path.read_bytes()
            if not any(n in raw for n in needles):
                continue
            for needle in needles:
                raw = raw.replace(needle, REDACTED.encode())
            path.write_bytes(raw)
            changed += 1
        return changed


@dataclass
class StepRecorder:
    """Collects steps as they happen and forwards each to the live progress handler."""

    on_step: Any = None
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> None:
        self.steps.append(step)
        if self.on_step is not None:
            with contextlib.suppress(Exception):  # a faulty handler never breaks a run
                self.on_step(step)
