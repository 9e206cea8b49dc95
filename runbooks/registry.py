"""The registry of runbooks: watchkeeper's own, plus site runbooks from entry points
(group `watchkeeper.runbooks`) or modules named in WATCHKEEPER_RUNBOOK_MODULES."""

from __future__ import annotations

import difflib
import importlib
import os
from importlib import metadata

from runbooks.errors import UsageError
from runbooks.model import Runbook

BUILTIN = (
    # receivers and scaling
    "runbooks.receivers.hashring",
    "runbooks.receivers.scale_receivers",
    "runbooks.receivers.receiver_health",
    "runbooks.receivers.tune_resources",
    # agents
    "runbooks.agents.agent_health",
    "runbooks.agents.restart_agent",
    "runbooks.agents.scale_agents",  # scale-agents (issue 6)
    "runbooks.agents.scale_prometheus",  # scale-prometheus: HA replicas of a server (issue 6)
    # backup and recovery
    "runbooks.backup.backup_tsdb",
    "runbooks.backup.restore_tsdb",
    "runbooks.backup.backup_bucket",
    "runbooks.backup.restore_bucket",
    "runbooks.backup.backup_opensearch",
    "runbooks.backup.restore_opensearch",
    "runbooks.backup.cleanup_log_indices",
    "runbooks.backup.verify_backups",  # verify-backups (issue 5)
    # checklists: checklist-daily, checklist-weekly, checklist-monthly (issue 7)
    "runbooks.checklists.checklists",
    # troubleshooting: diagnose-* (issue 7)
    "runbooks.diagnose.diagnose",
    # emergency: receiver-down; remote-write-failing, metrics-missing (issue 7)
    "runbooks.emergency.receiver_down",
    "runbooks.emergency.emergency",
    # updates and patches; the GitOps workflow (issue 15)
    "runbooks.upgrades.upgrade_chart",
    "runbooks.upgrades.upgrade_thanos",  # upgrade-thanos, upgrade-prometheus
    "runbooks.upgrades.patch_images",
    "runbooks.gitops.gitops",
    # disaster recovery: DR drills (issue 16)
    "runbooks.dr.dr_drill",
    # quick reference
    "runbooks.quickref.status",
    "runbooks.quickref.ping",
)


def _modules() -> list[str]:
    names = list(BUILTIN)
    names += [m for m in os.environ.get("WATCHKEEPER_RUNBOOK_MODULES", "").split(",") if m]
    names += [ep.value for ep in metadata.entry_points(group="watchkeeper.runbooks")]
    return names


def all_runbooks() -> dict[str, type[Runbook]]:
    """Every registered runbook by name. A module registers the Runbook subclasses it defines
    at top level."""
    found: dict[str, type[Runbook]] = {}
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Runbook)
                and value is not Runbook
                and value.__module__ == module.__name__
            ):
                found[value.name] = value
    return dict(sorted(found.items()))


def get(name: str) -> type[Runbook]:
    runbooks = all_runbooks()
    if name in runbooks:
        return runbooks[name]
    close = difflib.get_close_matches(name, list(runbooks), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"no runbook named {name!r}{hint} (`watchkeeper list` shows them all)")
