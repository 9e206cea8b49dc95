"""Run a runbook: validate, lock, pre-gates, playbook, post-gates, rollback, report.

The order is the safety contract: nothing changes before validation and pre-gates pass; a failed
playbook, a failed post-gate or an interrupt runs the rollback; every run leaves a journal, the
reports and the run metrics, whatever happened.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    #: --yes: the user confirmed a change that needs it (remediation, a production drill).
    confirmed: bool = False


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

    @property
    def left_out(self) -> Mapping[str, str]:
        """Clusters of the inventory (or of --limit's groups) the runbook does not apply to,
        each with why."""
        return self.journal.left_out


@dataclass
class RunEvents:
    """Hooks for live progress. No-op defaults; a faulty handler never breaks a run."""

    on_step: Callable[[Step], None] = lambda step: None
    on_phase: Callable[[str], None] = lambda phase: None
    #: The clusters left out (the runbook does not apply to them), each with why.
    on_left_out: Callable[[Mapping[str, str]], None] = lambda left_out: None


class Interrupt:
    """Ctrl-C as a run sees it. What a press does depends on where the run is:

    - before the change (validation, pre-gates): stop; nothing was changed;
    - during the playbook: stop it; the rollback runs (exit 130);
    - during the post-gates, the change being done: its checks finish (their verdict decides
      the run as without a Ctrl-C); a second press stops them and runs the rollback (130);
    - during the rollback: nothing; a rollback cut short would leave a half-done change.

    `press()` (from the SIGINT handler) records a press and returns what it does, for people.
    The run keeps `phase`, `step` (the task or check under way) and `rollback` up to date.
    """

    def __init__(self, cancel: threading.Event | None = None) -> None:
        #: Set by the first press: stops the playbook, or the checks before it.
        self.cancel = cancel or threading.Event()
        #: Set by a second press during the post-gates: stops them; the rollback runs.
        self.again = threading.Event()
        self.phase = ""
        self.step = ""
        self.rollback = False
        self.presses = 0
        #: Where the run was at the first press: (phase, step).
        self.first: tuple[str, str] | None = None
        #: Where the run was when the second press stopped the post-gates.
        self.second: tuple[str, str] | None = None

    @property
    def finishing_checks(self) -> bool:
        """The first press came after the change was done: its checks finish."""
        return self.first is not None and self.first[0] == "post-gate"

    def press(self) -> str:
        self.presses += 1
        rollback = ("the rollback will still run" if self.rollback
                    else "this runbook has no rollback")
        if not self.cancel.is_set():
            self.first = (self.phase, self.step)
            self.cancel.set()
            if self.phase == "post-gate":
                return ("interrupt: the change is done; finishing its checks; Ctrl-C again to"
                        " stop them" + (" and roll back" if self.rollback else ""))
            if self.phase == "rollback":
                return "interrupt: the rollback is running and finishes; it is not stopped"
            if self.phase == "playbook":
                return f"interrupt: stopping the playbook; {rollback}"
            return "interrupt: stopping before anything changes"
        if self.finishing_checks and self.phase == "post-gate" and not self.again.is_set():
            self.second = (self.phase, self.step)
            self.again.set()
            return ("interrupt again: stopping the checks" + ("; rolling back" if self.rollback
                                                              else ""))
        return ("already stopping; waiting for the rollback to finish" if self.rollback
                else "already stopping")

    def record(self) -> dict[str, Any]:
        """For the journal: where the presses came and how many ({} without one)."""
        if self.first is None:
            return {"presses": self.presses} if self.cancel.is_set() else {}
        found: dict[str, Any] = {"presses": self.presses, "phase": self.first[0],
                                 "step": self.first[1]}
        if self.second is not None:
            found["second_phase"], found["second_step"] = self.second
        return found


def new_run_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()


def versions() -> dict[str, str]:
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    from importlib import metadata

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
    phase: Phase, gates: Sequence[Gate], ctx: RunContext, add: Callable[[Step], None],
    interrupt: Interrupt | None = None, closed: Callable[[], bool] = lambda: False,
) -> list[Step]:
    failed: list[Step] = []
    for gate in gates:
        for cluster in ctx.clusters:
            if closed():
                return failed
            if interrupt is not None:
                interrupt.step = f"{gate.name} on {cluster.name}"
            start = now()
            try:
                outcome = gate.check(ctx, cluster)
                status = "ok" if outcome.ok else "failed"
                message = outcome.evidence
            except Exception as exc:  # a gate that cannot decide is a failed gate
                status, message = "failed", f"{type(exc).__name__}: {exc}"
            step = Step(phase, cluster.name, gate.name, start, now(), status, message=message)  # type: ignore[arg-type]
            if closed():  # stopped meanwhile: the run has moved on without this result
                return failed
            add(step)
            if step.failed:
                failed.append(step)
    return failed


def _stoppable_gates(
    phase: Phase, gates: Sequence[Gate], ctx: RunContext, record: StepRecorder,
    interrupt: Interrupt, stop: threading.Event,
) -> tuple[list[Step], bool]:
    """The gates, in a thread of their own so that `stop` ends the wait for them at once
    (a gate may poll for minutes); returns the failed steps and whether they were stopped.
    Gates only read, so a stopped one is left to end by itself: its result is dropped and the
    run records the stop as an `interrupted` step naming the check under way."""
    failed: list[Step] = []
    lock = threading.Lock()
    stopped = [False]

    def closed() -> bool:
        with lock:
            return stopped[0]

    def gated_add(step: Step) -> None:
        with lock:
            if not stopped[0]:
                record.add(step)

    start = now()
    worker = threading.Thread(
        target=lambda: failed.extend(_gate_steps(phase, gates, ctx, gated_add, interrupt,
                                                 closed)),
        name=f"watchkeeper-{phase}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
        if stop.is_set() and worker.is_alive():
            with lock:
                stopped[0] = True
            where = interrupt.step
            record.add(Step(phase, "-", f"{phase}s stopped", start, now(), "interrupted",
                            message="stopped by Ctrl-C" + (f" while checking {where}"
                                                           if where else "")))
            return failed, True
    return failed, False


def select_clusters(runbook: type[Runbook], inventory: Inventory, limit: str
                    ) -> tuple[tuple[ClusterConfig, ...], dict[str, str]]:
    """The clusters a run works on, and those it leaves out with why, like a play's `hosts:`:
    of the clusters --limit selects (all without it), those the runbook applies to
    (Runbook.applies_to). A cluster named in --limit that it does not apply to is a
    UsageError (a group in --limit is narrowed as the whole inventory is). The chosen tuple
    may be empty: the caller says so with the reasons."""
    clusters = inventory.select(limit)
    if not clusters:
        raise UsageError(f"--limit {limit!r} selects no cluster")
    scope = runbook.applies_to
    if scope is None:
        return clusters, {}
    names = {t.strip() for t in limit.split(",")} - set(inventory.groups)
    refused = [f"  {c.name}: {variable}: expected {expected} ({runbook.name} works on"
               f" {scope.what}), found {found}"
               for c in clusters if c.name in names
               for variable, expected, found in scope.problems(c)]
    if refused:
        raise UsageError(
            f"--limit names cluster(s) {runbook.name} does not apply to; it works on"
            f" {scope.describe()}:\n" + "\n".join(refused)
            + "\n(take them out of --limit; without --limit it takes the clusters it applies"
            " to and names those it leaves out)")
    left_out = {c.name: why for c in clusters if (why := scope.reason(c))}
    return tuple(c for c in clusters if c.name not in left_out), left_out


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
    interrupt: Interrupt | None = None,
) -> Result:
    """Run `runbook` with `options`. Never raises for a failed run (only for a run directory
    that cannot be used): the Result says how it ended and the journal says why. Ctrl-C
    (`interrupt.press()`, or the `cancel` event set) ends as `interrupted` and the rollback
    still runs; after a completed change, a first Ctrl-C lets its checks finish and a second
    stops them (see Interrupt)."""
    events = events or RunEvents()
    interrupt = interrupt or Interrupt(cancel)
    cancel = interrupt.cancel
    interrupt.rollback = bool(runbook.rollback_playbook) and not options.check
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
    left_out: dict[str, str] = {}

    def phase(name: str) -> None:
        interrupt.phase, interrupt.step = name, ""
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
        clusters, left_out = select_clusters(runbook, inventory, options.limit)
        if left_out:
            with contextlib.suppress(Exception):  # a faulty handler never breaks a run
                events.on_left_out(left_out)
        if not clusters:
            assert runbook.applies_to is not None
            raise UsageError(
                f"{runbook.name} applies to none of the selected clusters; it works on"
                f" {runbook.applies_to.describe()}: "
                + "; ".join(f"{name}: {why}" for name, why in left_out.items()))
        _check_requires(runbook, inventory, clusters)
        ctx = RunContext(run_id, params, inventory, clusters, options.check, options.confirmed)
        start = now()
        try:
            try:
                runbook().validate(ctx)
            except WatchkeeperError:
                raise
            except Exception as exc:  # a validation that cannot decide refuses the run
                raise PreconditionFailed(
                    f"{runbook.name} could not validate the run: {type(exc).__name__}: {exc};"
                    " nothing was changed") from exc
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
                runbook, options, ctx, run_dir, record, phase, interrupt
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

    stopped_something = interrupt.first is None or interrupt.first[0] not in (
        "post-gate", "rollback")  # there a first Ctrl-C stops nothing: the verdict stands
    if cancel.is_set() and status != "successful" and (
            stopped_something or interrupt.again.is_set()):
        status, exit_code = "interrupted", EXIT_INTERRUPTED
    steps = tuple(record.steps)
    if status == "interrupted":
        message = interrupted_summary(interrupt, steps, message)
    elif not message and status != "successful":
        message = _summary(steps, status, options.check)
    elif status == "successful" and interrupt.finishing_checks:
        message = ("interrupted by the user (Ctrl-C) after the change was done: its checks"
                   " finished and passed")
    outcomes = cluster_outcomes([c.name for c in clusters], steps)
    if status == "interrupted":
        outcomes = _interrupted_outcomes(outcomes, steps)
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
        left_out=left_out,
        interrupt=interrupt.record(),
    )
    journal.write(run_dir / "journal.json")
    # Imported late: jinja2 and prometheus_client are not needed before the run ends.
    from runbooks.metrics import record_run
    from runbooks.report import write_reports

    write_reports(journal, run_dir)
    if clusters:
        textfile_dir = options.textfile_dir or state_dir() / "metrics"
        record_run(
            runbook.name, journal.clusters, journal.started.timestamp(), journal.ended.timestamp(),
            textfile_dir, options.pushgateway,
        )
        if not options.check:
            try:
                runbook().record_metrics(run_dir, textfile_dir)
            except Exception as exc:  # metrics never fail a run
                log.warning("%s: its own metrics were not written: %s", runbook.name, exc)
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


def interrupted_summary(interrupt: Interrupt, steps: Sequence[Step], cause: str = "") -> str:
    """What an interrupted run says first: that the user interrupted it, during which phase
    and step, and what the rollback restored (the rollback steps' own messages)."""
    phase, step = interrupt.first or ("", "")
    if interrupt.second is not None:
        phase, step = interrupt.second
        text = "interrupted by the user (Ctrl-C twice) while checking the change"
    elif phase:
        text = f"interrupted by the user (Ctrl-C) during the {phase}"
    else:
        text = "interrupted by the user (Ctrl-C)"
    if step:
        text += f", at {step!r}"
    rollback = [s for s in steps if s.phase == "rollback"]
    failed = [s for s in rollback if s.failed]
    if failed:
        first = failed[0]
        text += (f"; the rollback FAILED: {first.cluster}: {first.name}:"
                 f" {first.message or first.status}")
    elif rollback:
        said: dict[str, list[str]] = {}
        for s in rollback:
            if s.message:
                said.setdefault(s.cluster, []).append(s.message)
        # By cluster name: the clusters' rollbacks run in parallel and finish in any order.
        done = "; ".join(f"{cluster}: {', '.join(said[cluster])}" for cluster in sorted(said))
        clusters = sorted({s.cluster for s in rollback})
        text += ("; rolled back: " + done if done else
                 f"; rolled back on {', '.join(clusters)} ({len(rollback)} step(s) ok)")
    elif phase in ("", "validate", "lock", "pre-gate"):
        text += "; nothing was changed"
    elif interrupt.rollback:
        text += "; no rollback ran"
    else:
        text += "; this runbook has no rollback"
    if cause and not cause.startswith("interrupted"):
        text += f" ({cause})"
    return text


def _interrupted_outcomes(outcomes: Mapping[str, str], steps: Sequence[Step]
                          ) -> dict[str, str]:
    """An interrupted run's clusters: `rolled back` where the rollback ran and none of its
    steps failed, `failed` where a step failed, else `interrupted`."""
    rolled = {s.cluster for s in steps if s.phase == "rollback"}
    return {name: outcome if outcome == "failed" else
            "rolled back" if name in rolled else "interrupted"
            for name, outcome in outcomes.items()}


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
    interrupt: Interrupt,
) -> tuple[RunStatus, int]:
    cancel = interrupt.cancel
    if runbook.pre_gates:
        phase("pre-gate")
        # Nothing changed yet: a Ctrl-C stops the pre-gates at once.
        failed, stopped = _stoppable_gates("pre-gate", runbook.pre_gates, ctx, record,
                                           interrupt, cancel)
        if stopped or cancel.is_set():
            return "interrupted", EXIT_INTERRUPTED
        if failed:
            raise PreconditionFailed(
                f"a pre-gate failed; nothing was changed (see {run_dir / 'report.md'})"
            )

    limit = ",".join(c.name for c in ctx.clusters)
    try:
        own = runbook().extravars(ctx)
    except WatchkeeperError:
        raise
    except Exception as exc:  # e.g. the start state read from an API that went away
        raise PreconditionFailed(
            f"{runbook.name} could not prepare the playbook's variables: {type(exc).__name__}:"
            f" {exc}; nothing was changed") from exc
    extravars = {
        "wk_run_id": ctx.run_id,
        "wk_run_dir": str(run_dir),
        "wk_check_mode": options.check,
        "wk_defaults": inventory_defaults(),
        **own,
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
            on_task=lambda task: setattr(interrupt, "step", task),
        )

    if cancel.is_set():  # Ctrl-C before anything changed: stop here, nothing to roll back
        return "interrupted", EXIT_INTERRUPTED
    threading.Thread(target=_prepare_the_end, name="watchkeeper-prepare", daemon=True).start()
    phase("playbook")
    outcome = playbook(runbook.playbook, "main", "playbook")
    status: RunStatus = outcome.status
    if cancel.is_set() and status in ("canceled", "successful"):
        # Ctrl-C during the playbook said the rollback runs, also when it came too late to
        # stop the last task.
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
            # The change is done: a first Ctrl-C lets its checks finish, a second stops them.
            failed, stopped = _stoppable_gates("post-gate", runbook.post_gates, ctx, record,
                                               interrupt, interrupt.again)
            gate_failed = bool(failed)
            if stopped:
                status = "interrupted"
    needs_rollback = status != "successful" or gate_failed
    if needs_rollback and runbook.rollback_playbook and not options.check:
        phase("rollback")
        # The rollback is not cancellable: a second Ctrl-C must not leave a half rollback.
        rollback = playbook(runbook.rollback_playbook, "rollback", "rollback")
        if rollback.status != "successful":
            log.error("rollback of %s ended %s", runbook.name, rollback.status)
    return run_outcome(status, gate_failed, options.check, record.steps)


def _prepare_the_end() -> None:
    """Load what the end of a run needs (reports and their templates, metrics, versions) while
    its playbook runs, when this process only waits for ansible-playbook, rather than after.
    A failure here is not a failure of the run: the end loads what it needs again."""
    with contextlib.suppress(Exception):
        from runbooks import metrics, report  # noqa: F401

        report.load_templates()
        versions()


def _resolve_playbook(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else playbook_path(name)

