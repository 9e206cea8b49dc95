"""Run metrics in Prometheus text format: a textfile-collector file per runbook, and an optional
push to a Pushgateway.

`..._last_success_timestamp_seconds` must survive failed runs (the "no successful backup in
26 h" alert reads it):
- the textfile: the previous file is read back and its per-cluster success timestamps carried
  forward;
- the Pushgateway: a scheduled job runs in a fresh pod with no previous file, so it pushes one
  group per runbook *and cluster* with POST (pushadd), which replaces only the metric names it
  sends. A failed run sends no success timestamp, so the one pushed by the last good run stays,
  and a run limited to one cluster leaves the other clusters' groups alone. (A PUT of one group
  per runbook would have erased every cluster's last success on any failure.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

PREFIX = "watchkeeper_runbook"


def _previous_success(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(path.read_text()):
        if family.name != f"{PREFIX}_last_success_timestamp_seconds":
            continue
        for sample in family.samples:
            found[sample.labels.get("cluster", "")] = sample.value
    return found


def record_run(
    runbook: str,
    clusters: Mapping[str, str],
    started: float,
    ended: float,
    textfile_dir: Path,
    pushgateway: str | None = None,
) -> Path:
    """Write (and optionally push) the metrics of one run; returns the textfile path.

    `clusters` maps each cluster to its outcome (`ok`, `failed`, `not-run`).
    """
    textfile_dir.mkdir(parents=True, exist_ok=True)
    path = textfile_dir / f"watchkeeper_{runbook.replace('-', '_')}.prom"
    previous = _previous_success(path)
    registry = _registry(runbook, clusters, started, ended, previous, carry_forward=True)
    write_to_textfile(str(path), registry)
    if pushgateway:
        for cluster in clusters:
            one = _registry(runbook, {cluster: clusters[cluster]}, started, ended, {},
                            carry_forward=False)
            try:
                pushadd_to_gateway(pushgateway, job="watchkeeper", registry=one,
                                   grouping_key={"runbook": runbook, "cluster": cluster})
            except OSError as exc:  # a metrics push never fails a run
                log.warning("push to %s failed: %s", pushgateway, exc)
                break
    return path


def _registry(runbook: str, clusters: Mapping[str, str], started: float, ended: float,
              previous: Mapping[str, float], carry_forward: bool) -> CollectorRegistry:
    """The run's gauges. Without carry_forward (a push), a failed cluster gets no success
    timestamp at all, so the gateway keeps the last good one."""
    registry = CollectorRegistry()
    labels = ["runbook", "cluster"]
    last_run = Gauge(f"{PREFIX}_last_run_timestamp_seconds", "End of the last run.",
                     labels, registry=registry)
    duration = Gauge(f"{PREFIX}_duration_seconds", "Duration of the last run.", labels,
                     registry=registry)
    success = Gauge(f"{PREFIX}_success", "1 if the last run succeeded on the cluster.", labels,
                    registry=registry)
    stamps = dict(previous) if carry_forward else {}
    for cluster, outcome in clusters.items():
        last_run.labels(runbook, cluster).set(ended)
        duration.labels(runbook, cluster).set(ended - started)
        success.labels(runbook, cluster).set(1 if outcome == "ok" else 0)
        if outcome == "ok":
            stamps[cluster] = ended
    if stamps:  # clusters outside this run's --limit keep theirs (textfile only)
        last_ok = Gauge(f"{PREFIX}_last_success_timestamp_seconds",
                        "End of the last successful run.", labels, registry=registry)
        for cluster, stamp in stamps.items():
            last_ok.labels(runbook, cluster).set(stamp)
    return registry


DR_PREFIX = "watchkeeper_dr"


def record_drill(drill: Mapping[str, object], textfile_dir: Path) -> Path:
    """A drill's measures per scenario (drill.json's entries): RTO and RPO of the last drill,
    and the end of the last drill that passed, carried forward across failed drills (the
    "no passing drill for N days" alert reads it)."""
    textfile_dir.mkdir(parents=True, exist_ok=True)
    path = textfile_dir / f"{DR_PREFIX}.prom"
    passed_at: dict[str, float] = {}
    last: dict[str, dict[str, float]] = {}
    if path.is_file():
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                scenario = sample.labels.get("scenario", "")
                if family.name == f"{DR_PREFIX}_last_pass_timestamp_seconds":
                    passed_at[scenario] = sample.value
                else:
                    last.setdefault(scenario, {})[family.name] = sample.value
    registry = CollectorRegistry()
    rto = Gauge(f"{DR_PREFIX}_rto_seconds", "RTO measured by the last drill of the scenario.",
                ["scenario"], registry=registry)
    rpo = Gauge(f"{DR_PREFIX}_rpo_seconds", "RPO measured by the last drill of the scenario.",
                ["scenario"], registry=registry)
    passed = Gauge(f"{DR_PREFIX}_passed", "1 if the last drill of the scenario passed.",
                   ["scenario"], registry=registry)
    last_pass = Gauge(f"{DR_PREFIX}_last_pass_timestamp_seconds",
                      "End of the last drill of the scenario that passed.", ["scenario"],
                      registry=registry)
    scenarios = drill.get("scenarios")
    for entry in scenarios if isinstance(scenarios, list) else []:
        name = str(entry["scenario"])
        last[name] = {}
        if entry.get("rto_seconds") is not None:
            last[name][f"{DR_PREFIX}_rto_seconds"] = float(entry["rto_seconds"])
        if entry.get("rpo_seconds") is not None:
            last[name][f"{DR_PREFIX}_rpo_seconds"] = float(entry["rpo_seconds"])
        last[name][f"{DR_PREFIX}_passed"] = 1.0 if entry.get("passed") else 0.0
        if entry.get("passed"):
            passed_at[name] = time.time()
    gauges = {f"{DR_PREFIX}_rto_seconds": rto, f"{DR_PREFIX}_rpo_seconds": rpo,
              f"{DR_PREFIX}_passed": passed}
    for name, values in last.items():
        for metric, value in values.items():
            if metric in gauges:
                gauges[metric].labels(name).set(value)
    for name, stamp in passed_at.items():
        last_pass.labels(name).set(stamp)
    write_to_textfile(str(path), registry)
    return path
