"""The `watchkeeper` command. The CLI owns output and exit codes; the library never prints.

Exit codes: runbooks/errors.py (EXIT_MEANINGS, shown in --help).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from runbooks import registry
from runbooks.errors import (
    EXIT_BROKEN_PIPE,
    InventoryError,
    UsageError,
    WatchkeeperError,
    exit_codes_text,
)
from runbooks.journal import Step

EXIT_CODES = exit_codes_text()

_MARKS = {"ok": "[green]ok[/]", "changed": "[yellow]changed[/]", "failed": "[red]FAILED[/]",
          "skipped": "[dim]skipped[/]", "unreachable": "[red]UNREACHABLE[/]",
          "interrupted": "[red]INTERRUPTED[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


class _Console(Console):
    """rich's Console, except when the reader of its stream goes away: rich's default raises
    SystemExit(1), which a progress handler would raise from inside a running runbook. This
    one goes quiet and raises BrokenPipeError: a run's handlers ignore it (the run goes on to
    its end, rollback included) and main() ends quietly on it."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _silence_output() -> None:
    """After a BrokenPipeError: point stdout (and stderr, when its reader went away too) at
    /dev/null, so that what is still buffered for the reader that left does not raise again
    when the interpreter flushes the streams at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, sys.stdout.fileno())
        try:
            sys.stderr.flush()
        except OSError:
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, sys.stderr.fileno())
    finally:
        os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchkeeper",
        description="Runbooks for a Prometheus Agent -> Thanos Receive monitoring platform.",
        epilog="exit codes:" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every runbook, one line each")
    p.add_argument("--output", choices=("text", "json"), default="text")

    p = sub.add_parser("describe", help="a runbook's parameters, changes, gates and rollback")
    p.add_argument("name")

    p = sub.add_parser("run", help="run a runbook")
    p.add_argument("name")
    p.add_argument("-i", "--inventory", required=True, type=Path)
    p.add_argument("-l", "--limit", default="", help="clusters or groups, comma separated")
    p.add_argument("-C", "--check", action="store_true", help="predict; change nothing")
    p.add_argument("-D", "--diff", action="store_true", help="show what changes")
    p.add_argument("-y", "--yes", action="store_true",
                   help="allow an emergency runbook's remediation (without it: check mode), or a"
                   " drill on production (with -e allow_production=true)")
    p.add_argument("-e", "--extra-vars", action="append", default=[], metavar="KEY=VALUE",
                   help="a runbook parameter (repeatable); @file.yml loads a YAML mapping")
    p.add_argument("-f", "--forks", type=int, default=10)
    p.add_argument("--timeout", type=int, default=None, help="seconds for the playbook")
    p.add_argument("--run-dir", type=Path, default=None, help="where the run's files go")
    p.add_argument("--textfile-dir", type=Path,
                   default=_env_path("WATCHKEEPER_TEXTFILE_DIR"),
                   help="node-exporter textfile collector directory for run metrics")
    p.add_argument("--pushgateway", default=os.environ.get("WATCHKEEPER_PUSHGATEWAY"))
    p.add_argument("--vault-password-file", type=Path, default=None)
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more logging (also accepted before the command)")

    inv = sub.add_parser("inventory", help="check or show an inventory")
    inv_sub = inv.add_subparsers(dest="inventory_command", required=True, metavar="ACTION")
    for name, text in (("check", "validate; print every problem"),
                       ("show", "print the resolved view")):
        q = inv_sub.add_parser(name, help=text)
        q.add_argument("-i", "--inventory", required=True, type=Path)
        q.add_argument("-l", "--limit", default="")
        q.add_argument("--output", choices=("text", "json"), default="text")

    # Quick reference (issue 7): an instant query against a cluster's Thanos Query.
    q = sub.add_parser("query", help="instant PromQL query against a cluster's wk_query_url")
    q.add_argument("promql", metavar="PROMQL")
    q.add_argument("-i", "--inventory", type=Path, default=_env_path("WATCHKEEPER_INVENTORY"),
                   help="inventory (default $WATCHKEEPER_INVENTORY)")
    q.add_argument("--cluster", "-c", default=None,
                   help="the cluster whose wk_query_url to use (default: the first with one)")
    q.add_argument("--timeout", type=float, default=30.0)
    q.add_argument("--output", choices=("text", "json"), default="text")

    # Quick reference: `kubectl logs` of every pod of a component, through the API server.
    q = sub.add_parser("logs", help="each pod's log of a component (kubectl logs --prefix)")
    q.add_argument("component", metavar="COMPONENT",
                   help="workload or app.kubernetes.io/name (thanos-receive), alias (receive,"
                   " agent, query, store, alertmanager) or a pod name")
    q.add_argument("-i", "--inventory", type=Path, default=_env_path("WATCHKEEPER_INVENTORY"),
                   help="inventory (default $WATCHKEEPER_INVENTORY)")
    q.add_argument("--cluster", "-c", default=None,
                   help="the cluster whose kube context and namespace to use"
                   " (default: the first with wk_kube_context)")
    q.add_argument("--pod", default=None, help="only this pod of the component")
    q.add_argument("--tail", type=int, default=None, metavar="N", help="last N lines per pod")
    q.add_argument("--since", default=None, metavar="DURATION",
                   help="only lines newer than this (90s, 10m, 2h, 1d)")
    q.add_argument("--grep", default=None, metavar="REGEX", help="only lines matching REGEX")
    q.add_argument("--previous", action="store_true",
                   help="the previous (restarted) container's log")
    q.add_argument("--follow", "-f", action="store_true", help="stream new lines (Ctrl-C ends)")
    q.add_argument("--timeout", type=float, default=30.0)
    q.add_argument("--output", choices=("text", "json"), default="text")

    lab = sub.add_parser("lab", help="the local lab of real programs")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    for name, text in (("up", "build what is missing, start what is down, wait for health"),
                       ("status", "each component, its address and health"),
                       ("down", "stop what the lab started"),
                       ("env", "print the lab's secret environment as export lines")):
        q = lab_sub.add_parser(name, help=text)
        q.add_argument("--lab-dir", type=Path, default=None)
        q.add_argument("--output", choices=("text", "json"), default="text")
        if name == "down":
            q.add_argument("--purge", action="store_true", help="also remove the lab directory")
    return parser


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """`key=value` (value read as YAML, so 5 is a number) or `@file.yml`."""
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            try:
                data = yaml.safe_load(Path(item[1:]).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise UsageError(f"-e {item}: cannot read a YAML mapping: {exc}") from exc
            if not isinstance(data, dict):
                raise UsageError(f"-e {item}: the file must hold a YAML mapping")
            params.update(data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-e {item!r}: expected KEY=VALUE (e.g. -e rate_window=10)")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    return params


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace, out: Console) -> int:
    runbooks = registry.all_runbooks()
    if args.output == "json":
        print(json.dumps([{"name": r.name, "summary": r.summary, "mutating": r.mutating}
                          for r in runbooks.values()], indent=2))
        return 0
    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("runbook")
    table.add_column("changes")
    table.add_column("summary")
    for r in runbooks.values():
        table.add_row(r.name, "[yellow]mutating[/]" if r.mutating else "read-only", r.summary)
    out.print(table)
    return 0


def cmd_describe(args: argparse.Namespace, out: Console) -> int:
    r = registry.get(args.name)
    out.print(f"[bold]{r.name}[/]: {r.summary}")
    kind = "mutating (takes a per-cluster lock)" if r.mutating else "read-only"
    out.print(f"  kind:      {kind}")
    out.print(f"  playbook:  playbooks/{r.playbook}")
    out.print(f"  changes:   {r.changes}")
    out.print(f"  rollback:  {r.rollback}"
              + (f" (playbooks/{r.rollback_playbook})" if r.rollback_playbook else ""))
    if r.applies_to is not None:
        out.print(f"  applies to: {r.applies_to.describe()}; without --limit the others are"
                  " left out, saying why", markup=False)
    if r.requires:
        out.print("  requires:  " + ", ".join(f"wk_{f}" for f in r.requires))
    out.print("  parameters (-e KEY=VALUE):")
    fields = r.Params.model_fields
    if not fields:
        out.print("    none")
    for name, field in fields.items():
        default = "required" if field.is_required() else f"default {field.default!r}"
        kind = getattr(field.annotation, "__name__", str(field.annotation))
        out.print(f"    {name} ({kind}, {default}): {field.description or ''}")
    for title, gates in (("pre-gates", r.pre_gates), ("post-gates", r.post_gates)):
        out.print(f"  {title}:" + ("" if gates else " none"))
        for gate in gates:
            out.print(f"    {gate.name}: {gate.description}")
    return 0


def _print_problems(problems: Sequence[Any], err: Console) -> None:
    # One plain line per problem (no table): greppable, never folded by terminal width.
    for p in problems:
        err.print(f"  {p.cluster}: {p.field}: expected {p.expected}; found {p.found}"
                  f"  [{p.source}]", markup=False, soft_wrap=True)


def cmd_inventory(args: argparse.Namespace, out: Console, err: Console) -> int:
    from runbooks.inventory import check_inventory

    inventory, problems = check_inventory(args.inventory)
    if inventory is None:
        if args.output == "json":
            print(json.dumps({"ok": False, "problems": [p.__dict__ for p in problems]}, indent=2))
        else:
            err.print(f"[red]{len(problems)} problem(s)[/] in {args.inventory}:")
            _print_problems(problems, err)
        return 2
    clusters = inventory.select(args.limit)
    if args.inventory_command == "check":
        if args.output == "json":
            print(json.dumps({"ok": True, "clusters": [c.name for c in clusters],
                              "digest": inventory.digest}))
        else:
            out.print(f"[green]ok[/]: {len(clusters)} cluster(s) in {inventory.path}"
                      f" ({inventory.digest[:19]})")
        return 0
    import yaml

    view = {c.name: {k: v for k, v in c.public_view().items() if v not in (None, "", (), {})}
            for c in clusters}
    if args.output == "json":
        print(json.dumps({"inventory": str(inventory.path), "digest": inventory.digest,
                          "groups": inventory.groups, "clusters": view}, indent=2, default=list))
    else:
        out.print(yaml.safe_dump(json.loads(json.dumps(view, default=list)), sort_keys=False))
    return 0


class _Progress:
    """Live per-cluster step lines for people."""

    def __init__(self, console: Console):
        self.console = console

    def phase(self, name: str) -> None:
        self.console.print(f"[bold cyan]== {name}[/]")

    def left_out(self, left_out: Mapping[str, str]) -> None:
        for name, why in left_out.items():
            self.console.print(f"  left out {name}: {why}", markup=False)

    def step(self, step: Step) -> None:
        detail = step.diff_summary or step.message
        self.console.print(
            f"  {step.cluster:<20} {_MARKS.get(step.status, step.status):<10} {step.name}"
            f" [dim]({step.duration:.2f}s)[/]" + (f"  {detail}" if detail and step.failed else "")
        )
        for check in step.checks:
            if check.status != "ok":
                self.console.print(f"      {_MARKS.get(check.status, check.status)}"
                                   f" {check.name}: {check.evidence}")


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from runbooks.execute import Interrupt, RunEvents, RunOptions, run

    runbook = registry.get(args.name)
    if runbook.requires_confirmation and not args.yes and not args.check:
        err.print(f"[yellow]{runbook.name} remediates: without --yes it runs in check mode and"
                  " prints what it would do[/]")
        args.check = True
    if args.vault_password_file:
        os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(args.vault_password_file.resolve())
    options = RunOptions(
        inventory=args.inventory, limit=args.limit, params=parse_extra_vars(args.extra_vars),
        check=args.check, diff=args.diff, forks=args.forks, timeout=args.timeout,
        run_dir=args.run_dir, textfile_dir=args.textfile_dir, pushgateway=args.pushgateway,
        confirmed=args.yes,
    )
    interrupt = Interrupt()

    def on_sigint(signum: int, frame: Any) -> None:
        said = interrupt.press()  # what this Ctrl-C does depends on where the run is
        with contextlib.suppress(BrokenPipeError):  # the run must stop, printed or not
            err.print(f"[yellow]{said}[/]")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if args.output == "json":
            result = run(runbook, options, interrupt=interrupt)
        else:
            progress = _Progress(err)
            mode = " in check mode (nothing will change)" if args.check else ""
            err.print(f"[bold]watchkeeper run {runbook.name}[/]{mode}")
            result = run(runbook, options,
                         RunEvents(progress.step, progress.phase, progress.left_out),
                         interrupt=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    journal = result.journal
    summary = {
        "runbook": journal.runbook, "run_id": journal.run_id, "status": result.status,
        "exit_code": result.exit_code, "clusters": dict(result.clusters),
        "left_out": dict(result.left_out), "run_dir": str(result.run_dir),
        "journal": str(result.run_dir / "journal.json"),
        "report": str(result.run_dir / "report.md"), "message": journal.message,
    }
    try:
        if args.output == "json":
            print(json.dumps(summary, indent=2))
        else:
            color = "green" if result.successful else "red"
            out.print(f"[{color}]{result.status}[/] (exit {result.exit_code}) in"
                      f" {journal.duration:.1f}s" + "".join(
                          f"{', ' if i else ': '}{k}={v}"
                          for i, (k, v) in enumerate(result.clusters.items())))
            reasons: dict[str, list[str]] = {}
            for name, why in result.left_out.items():
                reasons.setdefault(why, []).append(name)
            for why, names in reasons.items():
                out.print(f"  left out ({why}): {', '.join(names)}", markup=False)
            if journal.message and not result.successful:
                err.print(f"  {journal.message}", markup=False)
            out.print(f"  report: {result.run_dir / 'report.md'}")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away; the run did not: its exit code is the one that matters (the
        # journal and the report hold what was not printed).
        _silence_output()
    return result.exit_code


def cmd_query(args: argparse.Namespace, out: Console, err: Console) -> int:
    from runbooks.inventory import load_inventory
    from runbooks.quickref.quickref import instant_query, query_cluster

    if args.inventory is None:
        raise UsageError("query needs an inventory: -i PATH or WATCHKEEPER_INVENTORY")
    cluster = query_cluster(load_inventory(args.inventory), args.cluster)
    result = instant_query(cluster, args.promql, args.timeout)
    if args.output == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    table = Table(box=None, header_style="bold")
    columns = result.columns()
    for column in columns:
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in result.rows:
        table.add_row(*[str(row["value"]) if c == "value" else str(row["labels"].get(c, ""))
                        for c in columns])
    out.print(table)
    err.print(f"[dim]{len(result.rows)} {result.result_type or 'result'} row(s) from"
              f" {result.url} ({cluster.name})[/]")
    return 0


def cmd_logs(args: argparse.Namespace, out: Console, err: Console) -> int:
    from runbooks.inventory import load_inventory
    from runbooks.quickref.quickref import follow_logs, kube_cluster, parse_since, read_logs

    if args.inventory is None:
        raise UsageError("logs needs an inventory: -i PATH or WATCHKEEPER_INVENTORY")
    if args.tail is not None and args.tail < 0:
        raise UsageError(f"--tail {args.tail}: give a number of lines >= 0")
    since = parse_since(args.since) if args.since else None
    cluster = kube_cluster(load_inventory(args.inventory), args.cluster)
    logs = read_logs(cluster, args.component, pod=args.pod, tail=args.tail,
                     since_seconds=since, grep=args.grep, previous=args.previous,
                     timeout=args.timeout)
    failed = [log for log in logs if log.error]
    if args.output == "json":
        print(json.dumps({"cluster": cluster.name, "namespace": cluster.namespace,
                          "component": args.component,
                          "pods": [{"pod": log.pod, "lines": list(log.lines),
                                    "error": log.error} for log in logs]}, indent=2))
    else:
        for log in logs:
            for line in log.lines:
                sys.stdout.write(f"[pod/{log.pod}] {line}\n")
        sys.stdout.flush()
        for log in failed:
            err.print(f"error: {log.error}", markup=False)
        err.print(f"[dim]{sum(len(log.lines) for log in logs)} line(s) from"
                  f" {len(logs)} pod(s) of {args.component} in {cluster.name}"
                  f" ({cluster.kube_context}/{cluster.namespace})[/]")
    if args.follow and not failed:
        def emit(pod: str, line: str) -> None:
            sys.stdout.write(f"[pod/{pod}] {line}\n")
            sys.stdout.flush()
        try:
            follow_logs(cluster, [log.pod for log in logs], args.grep, emit)
        except KeyboardInterrupt:
            return 0
    return 1 if failed else 0


def cmd_lab(args: argparse.Namespace, out: Console, err: Console) -> int:
    try:
        from watchkeeper_lab import Lab
    except ImportError as exc:
        raise UsageError(
            f"the lab is not installed ({exc}): it is a package of its own, beside watchkeeper;"
            " install it from a checkout with `pip install ./lab` (scripts/setup.sh does)"
        ) from exc
    lab = Lab(args.lab_dir)
    if args.lab_command == "up":
        status = lab.up(progress=lambda line: err.print(f"[dim]lab:[/] {line}"))
    elif args.lab_command == "down":
        lab.down(purge=args.purge, progress=lambda line: err.print(f"[dim]lab:[/] {line}"))
        out.print("lab stopped" + (" and purged" if args.purge else ""))
        return 0
    elif args.lab_command == "env":
        for key, value in lab.env().items():
            print(f"export {key}={value}")
        return 0
    else:
        status = lab.status()
    if args.output == "json":
        print(json.dumps(status.to_dict(), indent=2))
    else:
        table = Table(box=None, header_style="bold")
        for column in ("component", "address", "version", "pid", "health"):
            table.add_column(column)
        for c in status.components:
            table.add_row(c.name, c.address, c.version, str(c.pid or "-"),
                          "[green]healthy[/]" if c.healthy else f"[red]unhealthy[/] {c.detail}")
        out.print(table)
        out.print("platform synced from git by: " + (
            "ArgoCD" if status.syncer == "argocd" else "the lab itself (ArgoCD not built yet)"))
        if status.building:
            out.print(f"building in the background: {', '.join(status.building)}")
        out.print(f"inventory: {status.inventory}")
    return 0 if all(c.healthy for c in status.components) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. When the reader of its output goes away (`watchkeeper list | head`)
    it ends quietly with EXIT_BROKEN_PIPE, as Unix tools do; `run` keeps its run's code."""
    # At the exit that follows, the interpreter would collect every object of every module
    # it loaded (ansible-runner's, pydantic's, jinja2's...) only to free them: ~0.03 s of a
    # `run ping`. Frozen objects are left out of that collection; atexit handlers still run.
    atexit.register(gc.freeze)
    try:
        try:
            code = _main(argv)
        except SystemExit:  # argparse's --help and usage messages
            sys.stdout.flush()
            raise
        # Flushed here, not at the interpreter's exit, so that a reader that went away is a
        # BrokenPipeError handled below rather than an "Exception ignored" message.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_output()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Piped output (CI logs, grep) must not be folded at rich's default 80 columns.
    out = _Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err = _Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
    try:
        if args.command == "list":
            return cmd_list(args, out)
        if args.command == "describe":
            return cmd_describe(args, out)
        if args.command == "inventory":
            return cmd_inventory(args, out, err)
        if args.command == "lab":
            return cmd_lab(args, out, err)
        if args.command == "query":
            return cmd_query(args, out, err)
        if args.command == "logs":
            return cmd_logs(args, out, err)
        return cmd_run(args, out, err)
    except InventoryError as exc:
        if exc.problems:
            err.print(f"[red]{len(exc.problems)} inventory problem(s)[/]:")
            _print_problems(exc.problems, err)
        else:
            err.print(f"[red]error:[/] {exc}", markup=True)
        return exc.exit_code
    except WatchkeeperError as exc:
        err.print(f"error: {exc}", markup=False)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
