"""Troubleshooting diagnostics, read-only: each names the most likely cause first, with its
evidence, then the other findings as checks ordered by likelihood.

- diagnose-remote-write (workload clusters): why an agent does not deliver: agent down, a
  remote-write URL that differs from the inventory, a ConfigMap change not loaded, the endpoint
  refused / DNS / TLS / timeout / 4xx (dropped) / 5xx (retried), a stuck or lagging queue,
  shards at max; from the URL the agent actually runs, its queue metrics and its log;
- diagnose-receiver-connectivity (observability): each receiver's /-/ready, remote-write and
  gRPC ports from here, forward errors between receivers;
- diagnose-missing-metrics (workload clusters): each expected job (wk_expected_jobs) in Thanos
  Query: which one is missing and since when;
- diagnose-disk-space (all): each data volume's usage, growth and time to full, what fills
  it (WAL, head chunks, blocks, blocks not uploaded, other files) and why (uploads failing,
  foreign data, WAL, shared filesystem, retention); plugins/module_utils/diagnose_disk.py;
- diagnose-network (all): a reachability matrix agent -> receiver remote write and query ->
  receiver gRPC (from here and in Query's own view).
The ranking is plugins/module_utils/diagnose.py (pure, table-tested); the emergency runbooks
remote-write-failing and metrics-missing reuse the same module.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks.gates import require_workload
from runbooks.model import AGENTS, RECEIVERS, Params, Runbook, RunContext


class RemoteWriteParams(Params):
    rate_window: float = Field(5.0, gt=0, le=300, description="seconds between the two samples"
                               " of the agent's queue metrics")


class DiagnoseRemoteWrite(Runbook):
    name = "diagnose-remote-write"
    summary = ("Why an agent's remote write fails, most likely cause first: down, wrong URL,"
               " config not loaded, refused, DNS, TLS, 4xx, 5xx, lag, shards at max")
    playbook = "diagnose-remote-write.yml"
    Params = RemoteWriteParams
    applies_to = AGENTS
    requires = ("kube_context",)

    def validate(self, ctx: RunContext) -> None:
        require_workload(self.name, ctx)

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.params.model_dump(mode="json")


class ConnectivityParams(Params):
    rate_window: float = Field(5.0, gt=0, le=300, description="seconds over which forward"
                               " errors between receivers are counted")
    remote_write_port: int = Field(19291, gt=0, lt=65536,
                                   description="the receivers' remote-write port")


class DiagnoseReceiverConnectivity(Runbook):
    name = "diagnose-receiver-connectivity"
    summary = ("Per receiver: ready, remote-write and gRPC ports reachable, forward errors"
               " between receivers; most likely cause first")
    playbook = "diagnose-receiver-connectivity.yml"
    Params = ConnectivityParams
    applies_to = RECEIVERS


class MissingMetricsParams(Params):
    lookback: float = Field(3600.0, gt=0, le=7 * 86400,
                            description="seconds Query looks back for a job's last sample")
    stale_seconds: float = Field(0.0, ge=0, description="a job whose newest sample is older is"
                                 " missing (0: wk_threshold_remote_write_lag_seconds)")


class DiagnoseMissingMetrics(Runbook):
    name = "diagnose-missing-metrics"
    summary = ("Expected jobs per cluster (wk_expected_jobs) against Thanos Query: which"
               " cluster and job are missing, since when, and why")
    playbook = "diagnose-missing-metrics.yml"
    Params = MissingMetricsParams
    applies_to = AGENTS
    requires = ("query_url",)


class DiagnoseNetwork(Runbook):
    name = "diagnose-network"
    summary = ("Reachability matrix: agent -> receiver remote write, query -> receiver gRPC"
               " (from here and in Query's view)")
    playbook = "diagnose-network.yml"


class DiskSpaceParams(Params):
    rate_window: float = Field(10.0, gt=0, le=600, description="seconds between the two"
                               " measurements of each volume (growth, time to full)")
    upload_grace: float = Field(1800.0, gt=0, description="seconds after a block's end by"
                                " which the Thanos shipper must have uploaded it")


class DiagnoseDiskSpace(Runbook):
    name = "diagnose-disk-space"
    summary = ("Why a data volume fills: usage, growth, time to full, what fills it (WAL,"
               " blocks, blocks not uploaded, other files); most likely cause first")
    playbook = "diagnose-disk-space.yml"
    Params = DiskSpaceParams

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.params.model_dump(mode="json")
