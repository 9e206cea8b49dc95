"""status: is each cluster's remote write healthy and are the receivers ingesting?

Per cluster: the agent is ready; per remote-write queue, samples sent / failed / retried /
dropped per second, pending samples, lag and shards (old and new metric names detected); each
receiver is ready and ingesting (rate, newest sample age). Read-only; takes no lock.
"""

from __future__ import annotations

from pydantic import Field

from runbooks.model import Params, Runbook


class StatusParams(Params):
    rate_window: float = Field(
        5.0, gt=0, le=300,
        description="seconds between the two samples that give rates (Prometheus sends a"
        " remote-write batch at least every 5 s)",
    )


class Status(Runbook):
    name = "status"
    summary = "Agent readiness, remote-write health and lag, receiver readiness and ingestion"
    playbook = "status.yml"
    Params = StatusParams

