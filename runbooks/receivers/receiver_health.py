"""receiver-health: is Thanos Receive healthy, and how many receivers may still fail?

Per observability cluster, read-only, from the receivers' own metrics (through the API
server's pod proxy) and the hashring ConfigMap:
1. ring membership against the receive pods: Ready pods in no ring, ring endpoints without a
   Ready pod;
2. write quorum per ring: quorum = floor(RF/2)+1 (RF 2 needs 1 since Thanos v0.37; the version
   comes from thanos_build_info), so RF - quorum receivers may fail before writes lose quorum,
   minus the ring members down now;
3. per receiver forward, replication and receive (5xx, 4xx) error ratios over `rate_window`;
4. per receiver upload recency (last successful upload to the bucket).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks.model import RECEIVERS, Params, Runbook, RunContext


class ReceiverHealthParams(Params):
    rate_window: float = Field(
        5.0, gt=0, le=300, description="seconds between the two /metrics samples that give the"
        " error ratios")
    upload_max_age: float = Field(
        10800.0, gt=0, description="seconds without a successful block upload before a"
        " receiver fails (3 h: the usual alert; blocks are cut every 2 h)")


class ReceiverHealth(Runbook):
    name = "receiver-health"
    summary = ("Thanos Receive: error ratios per receiver, ring membership vs pods, receivers"
               " that may fail before writes lose quorum, upload recency")
    playbook = "receiver-health.yml"
    Params = ReceiverHealthParams
    applies_to = RECEIVERS
    requires = ("kube_context",)

    def extravars(self, ctx: RunContext[ReceiverHealthParams]) -> dict[str, Any]:
        params = ctx.params
        return {"rate_window": params.rate_window, "upload_max_age": params.upload_max_age}
