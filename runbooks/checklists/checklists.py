"""checklist-daily, checklist-weekly, checklist-monthly: the operations checklists.

Every item is a check per cluster with a status (ok / warn / fail / skipped), the evidence
(values, the query or API call) and a hint when not ok; thresholds come from the inventory
(`wk_threshold_*`, docs/inventory.md) with defaults. An endpoint the inventory does not declare
is `skipped` with the reason, never a pass. All clusters run in parallel (Ansible forks);
the run's reports hold one row per cluster and check.

Exit code: 1 when any check failed; warnings and skipped items leave it 0 (a checklist is
read by people; `-e strict=true` makes a warning fail the run too, for CI gates).

- daily: ArgoCD Applications synced and healthy, the agent's scrape targets up, agents'
  remote write (as `status`), receivers ingesting, Grafana and its dashboards, disk usage of
  the data volumes (wk_data_volume_paths and the hostPath/local PersistentVolumes bound in
  the cluster's namespace);
- weekly: S3 bucket usage and growth (records kept under the state directory), the Prometheus
  server's TSDB size, Alertmanager's alerts of the week, WAL size, log index cleanup status;
- monthly: versions against the latest known, security patch status (as far as versions
  tell), resource usage from Thanos Query, backup verification age.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from runbooks.collection import state_dir
from runbooks.model import Params, Runbook, RunContext


class ChecklistParams(Params):
    strict: bool = Field(False, description="a warning fails the run too (exit 1)")


class DailyParams(ChecklistParams):
    rate_window: float = Field(
        5.0, gt=0, le=300,
        description="seconds between the two remote-write samples that give rates",
    )


class MonthlyParams(ChecklistParams):
    resource_window: str = Field(
        "1d", pattern=r"^[0-9]+[smhdwy]$",
        description="PromQL range of the resource usage analysis (max over it)",
    )


class _ChecklistVars:
    """The common part: where the state (S3 usage records) and textfiles are. Not a Runbook
    itself, so the registry does not list it."""

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        textfiles = os.environ.get("WATCHKEEPER_TEXTFILE_DIR") or str(state_dir() / "metrics")
        return {
            **ctx.params.model_dump(mode="json"),
            "wk_checklist_state_dir": str(state_dir()),
            "wk_checklist_textfile_dir": textfiles,
        }


class ChecklistDaily(_ChecklistVars, Runbook):
    name = "checklist-daily"
    summary = ("Daily checklist: ArgoCD sync/health, scrape targets, remote write, receivers"
               " ingesting, Grafana, disk usage")
    playbook = "checklist-daily.yml"
    Params = DailyParams


class ChecklistWeekly(_ChecklistVars, Runbook):
    name = "checklist-weekly"
    summary = ("Weekly checklist: S3 usage and growth, TSDB size, alerts of the week, WAL size,"
               " log index cleanup")
    playbook = "checklist-weekly.yml"
    Params = ChecklistParams
    changes = "nothing on the platform; keeps S3 usage records under the state directory"


class ChecklistMonthly(_ChecklistVars, Runbook):
    name = "checklist-monthly"
    summary = ("Monthly checklist: versions vs latest known, security patches, resource usage,"
               " backup verification age")
    playbook = "checklist-monthly.yml"
    Params = MonthlyParams
