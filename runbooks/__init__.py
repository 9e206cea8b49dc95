"""watchkeeper: runbooks for a Prometheus Agent -> Thanos Receive monitoring platform.

The public API is small on purpose; everything else is an implementation detail.
"""

from runbooks.errors import (
    InventoryError,
    LockedError,
    PreconditionFailed,
    SecretError,
    UsageError,
    WatchkeeperError,
)
from runbooks.execute import Result, RunEvents, RunOptions, run
from runbooks.inventory import ClusterConfig, Inventory, load_inventory
from runbooks.journal import Check, Journal, Step
from runbooks.model import Gate, GateResult, Params, Runbook, RunContext

__all__ = [
    "Check",
    "ClusterConfig",
    "Gate",
    "GateResult",
    "Inventory",
    "InventoryError",
    "Journal",
    "LockedError",
    "Params",
    "PreconditionFailed",
    "Result",
    "RunContext",
    "RunEvents",
    "RunOptions",
    "Runbook",
    "SecretError",
    "Step",
    "UsageError",
    "WatchkeeperError",
    "load_inventory",
    "run",
]
