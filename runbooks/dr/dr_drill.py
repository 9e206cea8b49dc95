"""dr-drill: inject a disaster, recover with the runbooks' own steps, measure RTO and RPO.

Per scenario: plan (what it destroys, the backup it recovers from and the backup's age), record
the fault in the run directory, inject it on exactly the planned objects, recover with the same
steps as the recovery runbook, then measure from data: RTO from the fault to the first
successful read of what was lost, RPO from the fault back to the newest point the recovery
brought back, and integrity (the counts the backup recorded). A drill passes only when RTO <=
target, RPO <= target and integrity holds; otherwise it exits 1 with the failed measure first.

Targets come from -e rto_target / rpo_target, else from the inventory (wk_dr_rto_target,
wk_dr_rpo_target, set per environment group). A cluster with wk_environment: production is
refused unless -e allow_production=true and --yes. Check mode prints the plan and destroys
nothing. A failed or interrupted drill still recovers (the rollback restores what the drill
recorded before destroying it) and says so.

The run leaves drill.json (targets, measures, each stage's timeline, the evidence) beside the
journal, a JUnit test case per scenario and measure, and the metrics watchkeeper_dr_rto_seconds,
watchkeeper_dr_rpo_seconds, watchkeeper_dr_passed and watchkeeper_dr_last_pass_timestamp_seconds
per scenario.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from runbooks.errors import PreconditionFailed, UsageError
from runbooks.inventory import ClusterConfig, parse_duration
from runbooks.model import AppliesTo, Params, Runbook, RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scenario:
    """What a scenario destroys, how it recovers, what it measures."""

    name: str
    destroys: str
    recovers: str
    measures: str


#: The scenarios, in the order `all` runs them.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "opensearch-loss",
        destroys="the live log indices matching -e indices (default logs-*) that the newest"
                 " snapshot holds (an index the snapshot lacks is never touched)",
        recovers="restore-opensearch in place (-e in_place=true) from that snapshot",
        measures="RTO: fault -> first search returning every restored document; RPO: fault -"
                 " the snapshot's end time; integrity: documents per index = the counts the"
                 " backup recorded"),
)
NAMES = tuple(s.name for s in SCENARIOS)


def scenario_table() -> str:
    """One paragraph per scenario, for `describe dr-drill`."""
    return "\n".join(f"{s.name}: destroys {s.destroys}; recovers with {s.recovers}; measures"
                     f" {s.measures}" for s in SCENARIOS)


class DrDrillParams(Params):
    scenario: Literal["opensearch-loss", "all"] = Field(
        description="the disaster to drill (all: every scenario in turn, one report): "
        + ", ".join(NAMES))
    rto_target: str = Field(
        "", description="recovery time objective, e.g. 15m (default: the inventory's"
        " wk_dr_rto_target)")
    rpo_target: str = Field(
        "", description="recovery point objective, e.g. 24h (default: the inventory's"
        " wk_dr_rpo_target)")
    allow_production: bool = Field(
        False, description="drill a cluster whose wk_environment is production (also needs"
        " --yes)")
    measure_timeout: int = Field(300, gt=0, le=86400,
                                 description="seconds to wait for the first successful read")
    # opensearch-loss
    repository: str = Field("watchkeeper", description="opensearch-loss: snapshot repository")
    snapshot: str = Field("", description="opensearch-loss: snapshot to restore from (default:"
                          " the newest successful)")
    indices: list[str] = Field(["logs-*"], description="opensearch-loss: patterns of the log"
                               " indices to destroy")

    @field_validator("rto_target", "rpo_target")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            try:
                parse_duration(value)
            except ValueError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("indices", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) \
            else value

    def scenarios(self) -> tuple[str, ...]:
        return NAMES if self.scenario == "all" else (self.scenario,)


def targets(params: DrDrillParams, cluster: ClusterConfig, groups: Mapping[str, tuple[str, ...]]
            ) -> dict[str, float]:
    """{"rto": s, "rpo": s} for `cluster`: -e first, then the inventory; a missing one is an
    error naming the cluster's groups (where it belongs)."""
    found: dict[str, float] = {}
    for key, given, configured in (("rto", params.rto_target, cluster.dr_rto_target),
                                   ("rpo", params.rpo_target, cluster.dr_rpo_target)):
        if given:
            found[key] = parse_duration(given)
        elif configured is not None:
            found[key] = configured
        else:
            member_of = sorted(g for g, hosts in groups.items() if cluster.name in hosts)
            where = (f"group_vars/{member_of[0]}.yml (groups of {cluster.name}:"
                     f" {', '.join(member_of)})" if member_of else f"host_vars/{cluster.name}.yml")
            example = "15m" if key == "rto" else "24h"
            raise UsageError(
                f"{cluster.name}: wk_dr_{key}_target is not set: a drill is judged against its"
                f" recovery objectives; set wk_dr_{key}_target (e.g. {example}) in {where}, or"
                f" give -e {key}_target=")
    return found


class DrDrill(Runbook):
    name = "dr-drill"
    summary = ("DR drill: inject a disaster, recover with the runbooks, measure RTO, RPO and"
               " integrity from data (drill.json, JUnit, metrics)")
    mutating = True
    playbook = "dr-drill.yml"
    rollback_playbook = "dr-drill-recover.yml"
    Params = DrDrillParams
    applies_to = AppliesTo("OpenSearch", fields=("opensearch_url",))
    changes = ("destroys what the scenario names, on the planned objects only, then recovers"
               " it; scenarios:\n" + scenario_table())
    rollback = ("recovers what the drill recorded before destroying it (opensearch-loss:"
                " restore in place of the recorded indices); nothing missing, nothing done")

    def validate(self, ctx: RunContext[DrDrillParams]) -> None:
        production = [c.name for c in ctx.clusters if c.environment == "production"]
        if production and not (ctx.params.allow_production and
                               (ctx.confirmed or ctx.check_mode)):
            raise PreconditionFailed(
                f"refusing to drill production cluster(s) {', '.join(production)}"
                " (wk_environment: production): a drill destroys data. Drill staging, or give"
                " -e allow_production=true and --yes; nothing was touched")
        for cluster in ctx.clusters:
            targets(ctx.params, cluster, ctx.inventory.groups)

    def extravars(self, ctx: RunContext[DrDrillParams]) -> Mapping[str, Any]:
        params = ctx.params
        return {
            "scenarios": list(params.scenarios()),
            # Per cluster: each environment group has its own objectives.
            "drill_targets": {c.name: targets(params, c, ctx.inventory.groups)
                              for c in ctx.clusters},
            "measure_timeout": params.measure_timeout,
            "repository": params.repository,
            "snapshot": params.snapshot,
            "indices": params.indices,
        }

    def record_metrics(self, run_dir: Path, textfile_dir: Path) -> None:
        drill = run_dir / "drill.json"
        if not drill.is_file():
            return
        from runbooks.metrics import record_drill

        record_drill(json.loads(drill.read_text()), textfile_dir)
