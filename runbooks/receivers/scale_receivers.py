"""scale-receivers: Thanos Receive up or down by the safe procedure: a receiver joins the ring
only once Ready, leaves it before its pod stops, one member at a time.

1. validate: an observability cluster with its kube context, Query (for the post-gate) and,
   to scale down, the blocks bucket; `replicas` >= the replication factor;
2. pre-gate (baseline): every receiver Ready and at the StatefulSet's replicas; the ring's
   catch-all members are exactly the Ready receivers and every receiver has loaded it;
3. up: StatefulSet first, the new pods Ready, only then the ring takes them (proven);
   down: one member at a time from the highest ordinal, ring before StatefulSet (proven on
   every receiver, the leaving one included), its shutdown flush awaited and its final block
   verified in the bucket before its claim may be released (`release_pvcs`);
4. post-gate: a canary series written after the change is visible in Query;
5. rollback (any failure, a failed gate or an interrupt): replicas and ring back to the
   start, in the safe order for the direction.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from runbooks.errors import PreconditionFailed
from runbooks.gates import canary_after_change, receive_applications, ring_and_pods, steady_state
from runbooks.inventory import READY_TIMEOUT
from runbooks.model import RECEIVERS, Gate, Params, Runbook, RunContext


class ScaleParams(Params):
    replicas: int = Field(..., ge=1, le=64, description="target number of receivers")
    mode: Literal["", "direct", "gitops"] = Field(
        "", description="override the inventory's wk_hashring_mode: gitops commits the ring"
        " and the replicas to the config repository and waits for the sync")
    sync_timeout: float = Field(300.0, gt=0, description="gitops mode: seconds for the sync"
                                " to bring a committed change")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0,
                                 description="seconds for new pods to be Ready")
    converge_timeout: float = Field(180.0, gt=0, description="seconds for each ring proof")
    upload_timeout: float = Field(
        300.0, gt=0, description="seconds for a removed receiver's final block in the bucket")
    release_pvcs: bool = Field(
        False, description="delete a removed receiver's claim once its upload is verified")
    canary_timeout: float = Field(
        120.0, gt=0, description="seconds for a canary sample written after the change")
    settle_timeout: float = Field(
        120.0, ge=0, description="seconds the steady-state gates wait for the platform to"
        " settle (write errors right after a ring change are retried by the agents)")


class ScaleReceivers(Runbook):
    name = "scale-receivers"
    summary = ("Scale Thanos Receive up or down safely: Ready before joining, one member at a"
               " time, ring before StatefulSet, flush and upload verified, canary proven")
    mutating = True
    playbook = "scale-receivers.yml"
    rollback_playbook = "scale-receivers-rollback.yml"
    Params = ScaleParams
    changes = ("the receive StatefulSet's replicas and the hashring (ConfigMap or GitOps"
               " commit); with release_pvcs, removed receivers' claims")
    rollback = "replicas and ring back to the start, in the safe order for the direction"
    applies_to = RECEIVERS
    requires = ("kube_context", "query_url")
    pre_gates = (Gate("steady state", "receivers Ready and on the ring, no write errors,"
                      " agents' lag low", steady_state),)
    post_gates = (Gate("steady state", "the same, after the change", steady_state),
                  Gate("canary", "a canary sample written after the change is in Query",
                       canary_after_change))

    def validate(self, ctx: RunContext[ScaleParams]) -> None:
        params = ctx.params
        for cluster in ctx.clusters:  # observability clusters only (applies_to)
            mode = params.mode or cluster.hashring_mode
            missing = [name for name, value in (
                ("wk_git_url", cluster.git_url),
                ("wk_hashring_git_path", cluster.hashring_git_path),
                ("wk_receive_replicas_git_path", cluster.receive_replicas_git_path))
                if not value]
            if mode == "gitops" and missing:
                raise PreconditionFailed(
                    f"{cluster.name}: gitops mode scales through the config repository (a"
                    " direct scale would be reverted by ArgoCD's self-heal, with a receiver"
                    f" still in the ring) and needs {', '.join(missing)}: set them, or run with"
                    " -e mode=direct where ArgoCD does not self-heal")
            if params.replicas < cluster.receive_replication_factor:
                raise PreconditionFailed(
                    f"{cluster.name}: replicas={params.replicas} < replication factor"
                    f" {cluster.receive_replication_factor}: every write would fail its quorum")
            sts, _, _ = ring_and_pods(cluster)
            if params.replicas < (sts.spec.replicas or 0) and not cluster.s3_bucket_blocks:
                raise PreconditionFailed(
                    f"{cluster.name}: scaling down verifies each removed receiver's final block"
                    " in the bucket: set wk_s3_bucket_blocks (and the S3 endpoint/keys)")

    def extravars(self, ctx: RunContext[ScaleParams]) -> dict[str, Any]:
        """The start (replicas and ring file) per cluster, for the rollback."""
        params = ctx.params
        start: dict[str, Any] = {}
        for cluster in ctx.clusters:
            sts, _, text = ring_and_pods(cluster)
            start[cluster.name] = {"replicas": int(sts.spec.replicas or 0), "ring": text}
        return {**params.model_dump(mode="json"), "wk_start": start,
                "wk_receive_apps": receive_applications(ctx)}
