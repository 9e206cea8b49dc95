"""The error tree. Every error says what the operator should do next.

Exit codes (documented in the README and `watchkeeper --help`) hang off the error class, so the
CLI maps an error to its code in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class WatchkeeperError(Exception):
    """Base of every error watchkeeper raises on purpose."""

    exit_code = 1


class UsageError(WatchkeeperError):
    """A bad command line or parameter: fix the invocation and run again."""

    exit_code = 2


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

    exit_code = 2

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

    exit_code = 3


class LockedError(WatchkeeperError):
    """Another mutating run holds the cluster's lock."""

    exit_code = 4


class SecretError(WatchkeeperError):
    """A secret reference could not be resolved (say which variable to set)."""

    exit_code = 2
