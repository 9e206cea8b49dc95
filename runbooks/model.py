"""The runbook model: what a runbook module declares.

A runbook reads as the procedure: its parameters, `validate()` (fail before touching anything),
pre-gates, the playbook, post-gates and the rollback playbook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from runbooks.inventory import ClusterConfig, Inventory


class Params(BaseModel):
    """Base of every runbook's parameters (`-e key=value` on the command line)."""

    # defer_build: a run validates one runbook's parameters; building the validators of every
    # registered runbook's when the registry imports them would cost every command ~15 ms.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
class AppliesTo:
    """The clusters a runbook works on, as a play's `hosts:` says where it runs: those of
    `roles` (empty: any role) that set every field of `fields` (what declares the component
    it works on, e.g. ("opensearch_url",)). A run without --limit takes these clusters and
    leaves out the others, saying why; a cluster named in --limit must be one of them."""

    what: str
    roles: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    def problems(self, cluster: ClusterConfig) -> list[tuple[str, str, str]]:
        """Why `cluster` is not one of them, as (variable, expected, found); [] when it is."""
        found: list[tuple[str, str, str]] = []
        if self.roles and cluster.role not in self.roles:
            found.append(("wk_role", " or ".join(self.roles), cluster.role))
        for name in self.fields:
            if getattr(cluster, name) in (None, "", (), {}):
                found.append((f"wk_{name}", "a value", "nothing"))
        return found

    def reason(self, cluster: ClusterConfig) -> str:
        """Why `cluster` is left out, for people ("k8s-01: workload cluster, no receivers");
        '' when it is one of them."""
        problems = self.problems(cluster)
        if not problems:
            return ""
        if problems[0][0] == "wk_role":
            return f"{cluster.role} cluster, no {self.what}"
        return f"no {self.what}: {', '.join(v for v, _, _ in problems)} not set"

    def describe(self) -> str:
        """What the runbook applies to, e.g. 'clusters with receivers (wk_role observability)'."""
        needs = ([f"wk_role {' or '.join(self.roles)}"] if self.roles else []) + [
            f"wk_{name}" for name in self.fields]
        return f"clusters with {self.what} ({', '.join(needs)})"


#: The workload clusters' Prometheus Agents; the observability clusters' Thanos receivers.
AGENTS = AppliesTo("Prometheus Agent", roles=("workload",))
RECEIVERS = AppliesTo("receivers", roles=("observability",))


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
    #: --yes was given (see RunOptions.confirmed).
    confirmed: bool = False


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
    #: The clusters it works on (None: every cluster); see AppliesTo.
    applies_to: ClassVar[AppliesTo | None] = None
    #: ClusterConfig fields every cluster it runs on must set, e.g. ("agent_url",)
    requires: ClassVar[tuple[str, ...]] = ()
    pre_gates: ClassVar[Sequence[Gate]] = ()
    post_gates: ClassVar[Sequence[Gate]] = ()

    def validate(self, ctx: RunContext) -> None:
        """Raise PreconditionFailed if the run must not start. Never changes anything."""

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        """Extra vars for the playbook; by default the params, under their own names."""
        return ctx.params.model_dump(mode="json")

    def record_metrics(self, run_dir: Path, textfile_dir: Path) -> None:
        """Metrics of its own beside every run's (e.g. a drill's RTO and RPO), from what the
        run left in `run_dir`; by default none. Never fails the run."""
