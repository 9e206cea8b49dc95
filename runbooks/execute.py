"""Run a runbook: validate, lock, pre-gates, playbook, post-gates, rollback, report.

The order is the safety contract: nothing changes before validation and pre-gates pass; a failed
playbook, a failed post-gate or an interrupt runs the rollback; every run leaves a journal, the
reports and the run metrics, whatever happened.
"""

from __future__ import annotations

import contextlib
import logging
import secrets as _random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runbooks.collection import playbook_path, state_dir
from runbooks.engine import PlaybookOutcome, PlaybookRun, run_playbook
from runbooks.errors import (
    EXIT_FAILED,
    EXIT_GATE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    InventoryError,
    LockedError,
    PreconditionFailed,
    Problem,
    UsageError,
    WatchkeeperError,
)
from runbooks.inventory import ClusterConfig, Inventory, inventory_defaults, load_inventory
from runbooks.journal import (
    Check,
    Journal,
    Phase,
    Redactor,
    RunStatus,
    Step,
    StepRecorder,
    cluster_outcomes,
    now,
)
from runbooks.model import Gate, Runbook, RunContext

log = logging.getLogger(__name__)

#: Seconds a rollback playbook may take, whatever --timeout the run had.
ROLLBACK_TIMEOUT = 1800


@dataclass(frozen=True)
class RunOptions:
    """How to run: everything the command line can set."""

    inventory: Path
    limit: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    diff: bool = False
    forks: int = 10
    timeout: int | None = None
    run_dir: Path | None = None
    textfile_dir: Path | None = None
    pushgateway: str | None = None


@dataclass(frozen=True)
class Result:
    """The frozen outcome of a run."""

    status: RunStatus
    exit_code: int
    clusters: Mapping[str, str]
    run_dir: Path
    journal: Journal

    @property
    def successful(self) -> bool:
        return self.status == "successful"


@dataclass
class RunEvents:
    """Hooks for live progress. No-op defaults; a faulty handler never breaks a run."""

    on_step: Callable[[Step], None] = lambda step: None
    on_phase: Callable[[str], None] = lambda phase: None


def new_run_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ") + "-" + _random.token_hex(3)


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for dist in ("watchkeeper", "ansible-core", "ansible-runner"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "unknown"
    return found


def default_runs_dir() -> Path:
    return state_dir() / "runs"


def _secret_values(inventory: Inventory | None) -> list[str]:
    values: list[str] = []
    if inventory is None:
        return values
    for cluster in inventory.clusters:
        for _, ref in cluster.secrets():
            try:
                values.append(ref.resolve())
            except WatchkeeperError:
                continue  # unresolved: nothing to scrub
    return values


def _gate_steps(
    phase: Phase, gates: Sequence[Gate], ctx: RunContext, record: StepRecorder
) -> list[Step]:
    failed: list[Step] = []
    for gate in gates:
        for cluster in ctx.clusters:
            start = now()
            try:
                outcome = gate.check(ctx, cluster)
                status = "ok" if outcome.ok else "failed"
                message = outcome.evidence
            except Exception as exc:  # a gate that cannot decide is a failed gate
                status, message = "failed", f"{type(exc).__name__}: {exc}"
            step = Step(phase, cluster.name, gate.name, start, now(), status, message=message)  # type: ignore[arg-type]
            record.add(step)
            if step.failed:
                failed.append(step)
    return failed


def _check_requires(runbook: type[Runbook], inventory: Inventory,
                    clusters: Sequence[ClusterConfig]) -> None:
    problems = []
    for cluster in clusters:
        for name in runbook.requires:
            value = getattr(cluster, name)
            if value is None or value == "" or value == ():
                problems.append(Problem(cluster.name, f"wk_{name}",
                                        f"a value (runbook {runbook.name} needs it)", "nothing",
                                        str(inventory.path)))
    if problems:
        raise InventoryError(problems)


def run(
    runbook: type[Runbook],
    options: RunOptions,
    events: RunEvents | None = None,
    cancel: threading.Event | None = None,
) -> Result:
    """Run `runbook` with `options`. Never raises for a failed run (only for a run directory
    that cannot be used): the Result says how it ended and the journal says why. Ctrl-C (the
    `cancel` event) ends as `interrupted` and the rollback still runs."""
    events = events or RunEvents()
    cancel = cancel or threading.Event()
    run_id = new_run_id()
    run_dir = (options.run_dir or default_runs_dir() / f"{runbook.name}-{run_id}").resolve()
    if run_dir.is_dir() and any(run_dir.iterdir()):
        # ansible-runner would reuse env/ files of the earlier run: never mix two runs.
        raise UsageError(f"--run-dir {run_dir} is not empty; give a new directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = now()
    record = StepRecorder(on_step=events.on_step)
    inventory: Inventory | None = None
    clusters: tuple[ClusterConfig, ...] = ()
    status: RunStatus = "failed"
    exit_code = EXIT_FAILED
    message = ""
    params_view: Mapping[str, Any] = dict(options.params)

    def phase(name: str) -> None:
        with contextlib.suppress(Exception):  # a faulty handler never breaks a run
            events.on_phase(name)

    try:
        phase("validate")
        try:
            params = runbook.Params.model_validate(dict(options.params))
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()
            )
            raise UsageError(f"bad parameter for {runbook.name}: {details}"
                             f" (see `watchkeeper describe {runbook.name}`)") from exc
        params_view = params.model_dump(mode="json")
        inventory = load_inventory(options.inventory)
        clusters = inventory.select(options.limit)
        if not clusters:
            raise UsageError(f"--limit {options.limit!r} selects no cluster")
        _check_requires(runbook, inventory, clusters)
        ctx = RunContext(run_id, params, inventory, clusters, options.check)
        start = now()
        try:
            runbook().validate(ctx)
        except PreconditionFailed as exc:
            record.add(Step("validate", "-", "validate", start, now(), "failed", message=str(exc)))
            raise
        record.add(Step("validate", "-", "validate", start, now(), "ok",
                        message=f"{len(clusters)} cluster(s), inventory {inventory.digest[:19]}"))

        from runbooks.lock import cluster_locks

        take_lock = runbook.mutating and not options.check
        lock_ctx = (
            cluster_locks(clusters, runbook.name, run_id)
            if take_lock
            else contextlib.nullcontext()
        )
        with lock_ctx:
            status, exit_code = _run_locked(
                runbook, options, ctx, run_dir, record, phase, cancel
            )
    except WatchkeeperError as exc:
        message = str(exc)
        exit_code = exc.exit_code
        status = "failed"
        if isinstance(exc, LockedError | PreconditionFailed | InventoryError | UsageError):
            log.info("%s: %s", runbook.name, exc)
    except KeyboardInterrupt:
        status, exit_code = "interrupted", EXIT_INTERRUPTED
        message = "interrupted before the playbook"

    if cancel.is_set() and status != "successful":
        status, exit_code = "interrupted", EXIT_INTERRUPTED
    steps = tuple(record.steps)
    if not message and status != "successful":
        message = _summary(steps, status, options.check)
    outcomes = cluster_outcomes([c.name for c in clusters], steps)
    if options.check:  # a fault found in check mode fails its cluster, as in the run's status
        for step, _ in check_mode_faults(steps):
            if step.cluster in outcomes:
                outcomes[step.cluster] = "failed"
    redactor = Redactor(_secret_values(inventory))
    journal = Journal(
        runbook=runbook.name,
        run_id=run_id,
        status=status,
        exit_code=exit_code,
        started=started,
        ended=now(),
        check_mode=options.check,
        limit=options.limit,
        params=redactor.data(params_view),
        inventory={"path": str(options.inventory), "digest": inventory.digest if inventory else ""},
        versions=versions(),
        clusters=outcomes,
        steps=tuple(
            replace(s, message=redactor.text(s.message), checks=tuple(
                replace(c, evidence=redactor.text(c.evidence), hint=redactor.text(c.hint))
                for c in s.checks))
            for s in steps
        ),
        message=redactor.text(message),
        run_dir=str(run_dir),
    )
    journal.write(run_dir / "journal.json")
    # Imported late: jinja2 and prometheus_client are not needed before the run ends.
    from runbooks.metrics import record_run
    from runbooks.report import write_reports

    write_reports(journal, run_dir)
    if clusters:
        record_run(
            runbook.name, journal.clusters, journal.started.timestamp(), journal.ended.timestamp(),
            options.textfile_dir or state_dir() / "metrics", options.pushgateway,
        )
    scrubbed = redactor.scrub_tree(run_dir)
    if scrubbed:
        log.info("redacted secret values from %d file(s) of %s", scrubbed, run_dir)
    return Result(status, exit_code, journal.clusters, run_dir, journal)


def check_mode_faults(steps: Sequence[Step]) -> list[tuple[Step, Check]]:
    """The failing findings (FAIL checks) of a run's playbook steps, each with its step.

    The emergency runbooks diagnose without failing the task (so that the remedy can follow);
    in check mode nothing is remedied, so each of these findings is a fault that stands."""
    return [(step, check) for step in steps if step.phase == "playbook"
            for check in step.checks if check.status == "fail"]


def run_outcome(playbook: RunStatus, gate_failed: bool, check: bool,
                steps: Sequence[Step]) -> tuple[RunStatus, int]:
    """The run's status and exit code, from how its playbook ended, whether a post-gate
    failed, whether it ran in check mode and the steps it recorded:

    - a post-gate failed after a successful playbook: failed, 3 (rolled back);
    - check mode, and a playbook step reported a failing finding (check_mode_faults): failed,
      1: nothing remedied it (an emergency runbook without --yes that finds a fault ends as
      the diagnose runbooks do). Out of check mode the remedy and its verification decide;
    - else the playbook's status: successful 0, interrupted 130, anything else 1.
    """
    if playbook == "successful" and gate_failed:
        return "failed", EXIT_GATE
    if playbook == "successful" and check and check_mode_faults(steps):
        return "failed", EXIT_FAILED
    codes = {"successful": EXIT_OK, "interrupted": EXIT_INTERRUPTED}
    return playbook, codes.get(playbook, EXIT_FAILED)


def _summary(steps: Sequence[Step], status: str, check: bool = False) -> str:
    failed = [s for s in steps if s.failed]
    if failed:
        first = failed[0]
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        return f"{first.cluster}: {first.name}: {first.message or first.status}{more}"
    faults = check_mode_faults(steps) if check else []
    if faults:
        step, finding = faults[0]
        more = f" (+{len(faults) - 1} more)" if len(faults) > 1 else ""
        return (f"check mode found a fault, nothing was remedied: {step.cluster}:"
                f" {finding.name}: {finding.evidence}{more}")
    return status


def _run_locked(
    runbook: type[Runbook],
    options: RunOptions,
    ctx: RunContext,
    run_dir: Path,
    record: StepRecorder,
    phase: Callable[[str], None],
    cancel: threading.Event,
) -> tuple[RunStatus, int]:
    if runbook.pre_gates:
        phase("pre-gate")
        if _gate_steps("pre-gate", runbook.pre_gates, ctx, record):
            raise PreconditionFailed(
                f"a pre-gate failed; nothing was changed (see {run_dir / 'report.md'})"
            )

    limit = ",".join(c.name for c in ctx.clusters)
    extravars = {
        "wk_run_id": ctx.run_id,
        "wk_check_mode": options.check,
        "wk_defaults": inventory_defaults(),
        **runbook().extravars(ctx),
    }

    def playbook(name: str, ident: str, phase_name: Phase) -> PlaybookOutcome:
        return run_playbook(
            PlaybookRun(
                playbook=_resolve_playbook(name),
                inventory=ctx.inventory.path,
                private_data_dir=run_dir / "ansible",
                ident=ident,
                phase=phase_name,
                limit=limit,
                extravars=extravars,
                check=options.check,
                diff=options.diff,
                forks=options.forks,
                # --timeout bounds the change; the rollback after it gets its own, longer
                # bound: a rollback cut short would leave the half-done change in place.
                timeout=options.timeout if phase_name != "rollback" else ROLLBACK_TIMEOUT,
            ),
            on_step=record.add,
            cancel=cancel if phase_name == "playbook" else None,
        )

    if cancel.is_set():  # Ctrl-C before anything changed: stop here, nothing to roll back
        return "interrupted", EXIT_INTERRUPTED
    phase("playbook")
    outcome = playbook(runbook.playbook, "main", "playbook")
    status: RunStatus = outcome.status
    if status == "canceled" and cancel.is_set():
        status = "interrupted"
    gate_failed = False
    if status == "successful" and runbook.post_gates:
        phase("post-gate")
        if options.check:
            # Nothing changed, so there is no after-state to verify.
            for gate in runbook.post_gates:
                stamp = now()
                record.add(Step("post-gate", "-", gate.name, stamp, stamp, "skipped",
                                message="check mode: nothing changed to verify"))
        else:
            gate_failed = bool(_gate_steps("post-gate", runbook.post_gates, ctx, record))
    needs_rollback = status != "successful" or gate_failed
    if needs_rollback and runbook.rollback_playbook and not options.check:
        phase("rollback")
        # The rollback is not cancellable: a second Ctrl-C must not leave a half rollback.
        rollback = playbook(runbook.rollback_playbook, "rollback", "rollback")
        if rollback.status != "successful":
            log.error("rollback of %s ended %s", runbook.name, rollback.status)
    return run_outcome(status, gate_failed, options.check, record.steps)


def _resolve_playbook(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else playbook_path(name)

