"""Run metrics in Prometheus text format: a textfile-collector file per runbook, and an optional
push to a Pushgateway.

`..._last_success_timestamp_seconds` must survive failed runs, so the previous file is read back
and its per-cluster success timestamps carried forward.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
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
    registry = CollectorRegistry()
    labels = ["runbook", "cluster"]
    last_run = Gauge(f"{PREFIX}_last_run_timestamp_seconds", "End of the last run.",
                     labels, registry=registry)
    last_ok = Gauge(f"{PREFIX}_last_success_timestamp_seconds",
                    "End of the last successful run.", labels, registry=registry)
    duration = Gauge(f"{PREFIX}_duration_seconds", "Duration of the last run.", labels,
                     registry=registry)
    success = Gauge(f"{PREFIX}_success", "1 if the last run succeeded on the cluster.", labels,
                    registry=registry)
    for cluster, outcome in clusters.items():
        ok = outcome == "ok"
        last_run.labels(runbook, cluster).set(ended)
        duration.labels(runbook, cluster).set(ended - started)
        success.labels(runbook, cluster).set(1 if ok else 0)
        if ok:
            last_ok.labels(runbook, cluster).set(ended)
        elif cluster in previous:
            last_ok.labels(runbook, cluster).set(previous[cluster])
    for cluster, stamp in previous.items():  # clusters outside this run's --limit
        if cluster not in clusters:
            last_ok.labels(runbook, cluster).set(stamp)
    write_to_textfile(str(path), registry)
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job="watchkeeper", registry=registry,
                            grouping_key={"runbook": runbook})
        except OSError as exc:  # a metrics push never fails a run
            log.warning("push to %s failed: %s", pushgateway, exc)
    return path
