"""The runbook model: what a runbook module declares.

A runbook reads as the procedure: its parameters, `validate()` (fail before touching anything),
pre-gates, the playbook, post-gates and the rollback playbook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from runbooks.inventory import ClusterConfig, Inventory


class Params(BaseModel):
    """Base of every runbook's parameters (`-e key=value` on the command line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate on one cluster."""

    ok: bool
    evidence: str = ""


@dataclass(frozen=True)
class Gate:
    """A steady-state check run on each cluster before or after the playbook."""

    name: str
    description: str
    check: Callable[[RunContext, ClusterConfig], GateResult]


#: A runbook's own Params class, for RunContext[P].
P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class RunContext(Generic[P]):
    """What a runbook's Python side sees: the validated params and the selected clusters.

    A runbook annotates with its own Params (`ctx: RunContext[ScaleParams]`) so `ctx.params`
    has their fields; a bare `RunContext` leaves them `Any` (`RunContext[Any]`).
    """

    run_id: str
    params: P
    inventory: Inventory
    clusters: tuple[ClusterConfig, ...]
    check_mode: bool


class Runbook:
    """Base class. Subclasses set the class attributes and override what they need."""

    name: ClassVar[str]
    summary: ClassVar[str]
    mutating: ClassVar[bool] = False
    #: Emergency remediation: `watchkeeper run` does it only with --yes (else check mode).
    requires_confirmation: ClassVar[bool] = False
    playbook: ClassVar[str]
    rollback_playbook: ClassVar[str | None] = None
    Params: ClassVar[type[Params]] = Params
    changes: ClassVar[str] = "nothing (read-only)"
    rollback: ClassVar[str] = "none needed (read-only)"
    #: ClusterConfig fields every selected cluster must set, e.g. ("agent_url",)
    requires: ClassVar[tuple[str, ...]] = ()
    pre_gates: ClassVar[Sequence[Gate]] = ()
    post_gates: ClassVar[Sequence[Gate]] = ()

    def validate(self, ctx: RunContext) -> None:
        """Raise PreconditionFailed if the run must not start. Never changes anything."""

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        """Extra vars for the playbook; by default the params, under their own names."""
        return ctx.params.model_dump(mode="json")
