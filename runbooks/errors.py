"""The error tree and the exit codes. Every error says what the operator should do next.

The exit codes are defined here and nowhere else: the constants below, their meanings (the
CLI's `watchkeeper --help` epilog is made from EXIT_MEANINGS; the README's table says the
same), and each error class's exit_code is one of them, so the CLI maps an error to its code in
one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130
#: The exit status a shell reports for a program killed by SIGPIPE (128 + 13), as Unix tools
#: end when the reader of their output goes away (`watchkeeper list | head -3`).
EXIT_BROKEN_PIPE = 141

#: Each exit code and what it means, as `watchkeeper --help` lists them (a meaning's lines).
EXIT_MEANINGS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (EXIT_OK, ("success",)),
    (EXIT_FAILED, ("the runbook failed (a step or check failed, timeout); in check mode (an"
                   " emergency", "runbook without --yes) also a fault found and left as it is")),
    (EXIT_USAGE, ("usage or inventory error (nothing ran)",)),
    (EXIT_GATE, ("a gate or precondition failed (nothing was changed, or the change was rolled"
                 " back)",)),
    (EXIT_LOCKED, ("locked: another mutating run holds a cluster",)),
    (EXIT_INTERRUPTED, ("interrupted (Ctrl-C); the rollback still ran (after a completed"
                        " change a first Ctrl-C", "lets its checks finish, a second stops"
                        " them and rolls back)")),
    (EXIT_BROKEN_PIPE, ("the reader of the output went away (| head); `run` keeps its run's"
                        " code instead",)),
)


def exit_codes_text() -> str:
    """The exit-code table of `watchkeeper --help`: a code, then its meaning's lines."""
    rows = []
    for code, lines in EXIT_MEANINGS:
        rows.append(f"  {code:<4} {lines[0]}")
        rows.extend(f"       {line}" for line in lines[1:])
    return "\n" + "\n".join(rows) + "\n"


class WatchkeeperError(Exception):
    """Base of every error watchkeeper raises on purpose."""

    exit_code = EXIT_FAILED


class UsageError(WatchkeeperError):
    """A bad command line or parameter: fix the invocation and run again."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Problem:
    """One inventory problem: where it is and how to fix it."""

    cluster: str
    field: str
    expected: str
    found: str
    source: str

    def __str__(self) -> str:
        return (
            f"{self.cluster}: {self.field}: expected {self.expected}, found {self.found}"
            f" ({self.source})"
        )


class InventoryError(WatchkeeperError):
    """The inventory failed its schema; nothing was run."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: Sequence[Problem] | str):
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(problems)
            lines = "\n".join(f"  - {p}" for p in self.problems)
            super().__init__(f"inventory has {len(self.problems)} problem(s):\n{lines}")


class PreconditionFailed(WatchkeeperError):
    """validate() or a pre-gate refused: nothing was changed."""

    exit_code = EXIT_GATE


class LockedError(WatchkeeperError):
    """Another mutating run holds the cluster's lock."""

    exit_code = EXIT_LOCKED


class SecretError(WatchkeeperError):
    """A secret reference could not be resolved (say which variable to set)."""

    exit_code = EXIT_USAGE
