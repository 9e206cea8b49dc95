"""receiver-down (emergency): receivers that are not Ready, diagnosed and remediated.

1. diagnose: every receive pod that is not Ready (phase, restarts, last events, whether the
   ring still sends it writes) and every ring endpoint without a Ready pod;
2. remediate the known causes, each verified before the next: restart the pod (the
   StatefulSet recreates it) and wait for Ready; a receiver that stays down is taken out of
   the ring (the ring over the Ready receivers, proven on each), never below the replication
   factor;
3. verify (post-gate): a canary sample written after the remediation is in Query;
4. report what changed. Without --yes it runs in check mode: the diagnosis and the plan.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from runbooks.gates import canary_after_change
from runbooks.model import RECEIVERS, Gate, Params, Runbook, RunContext


class ReceiverDownParams(Params):
    restart_timeout: float = Field(120.0, gt=0, le=3600,
                                   description="seconds for a restarted receiver to be Ready")
    remove_from_ring: bool = Field(True, description="take receivers that stay down out of"
                                                     " the ring")
    converge_timeout: float = Field(180.0, gt=0, description="seconds for the ring proof")
    canary_timeout: float = Field(120.0, gt=0, description="seconds for a canary sample"
                                                           " written after the remediation")


class ReceiverDown(Runbook):
    name = "receiver-down"
    summary = ("Emergency: diagnose receivers that are down, restart them, take those that"
               " stay down out of the ring, verify writes flow (asks for --yes)")
    mutating = True
    requires_confirmation = True
    playbook = "receiver-down.yml"
    Params = ReceiverDownParams
    changes = ("deletes receive pods that are not Ready (the StatefulSet recreates them);"
               " the hashring, when a receiver stays down")
    rollback = ("none: a restart cannot be undone and a ring without a dead receiver is the"
                " remedy; `hashring` puts it back once it is Ready")
    applies_to = RECEIVERS
    requires = ("kube_context", "query_url")
    post_gates = (Gate("canary", "a canary sample written after the remediation is in Query",
                       canary_after_change),)

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.params.model_dump(mode="json")
