"""hashring: the Thanos Receive hashring from the Ready receivers, validated, applied, proven.

The procedure (a receiver reloads the hashring file when it changes and reports the hash of
the file it loaded as thanos_receive_config_hash; see Thanos' pkg/receive/config.go):
1. validate: an observability cluster is selected, with its kube context; params sane;
2. build the catch-all ring from the receive StatefulSet's Ready pods (or `members`), keep
   every tenant ring as it is; refuse an invalid ring (JSON array, tenant rings before the one
   catch-all ring, endpoints >= replication factor, gRPC ports, algorithm) before anything
   changes; show the diff (`--check --diff` stops here);
3. apply: patch the ConfigMap (direct) or commit the ConfigMap manifest to the GitOps
   repository for ArgoCD to sync (gitops; the inventory's wk_hashring_mode says which);
4. prove convergence: every Ready receiver reports thanos_receive_config_hash equal to the hash
   of the new file computed here, its last reload successful, no new hashring file errors;
5. on a failed proof: put the previous ring back (proven the same way) and fail, naming the
   receivers that lagged and what they report.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from runbooks.errors import PreconditionFailed
from runbooks.gates import receive_applications
from runbooks.model import RECEIVERS, Params, Runbook, RunContext


class HashringParams(Params):
    mode: Literal["", "direct", "gitops"] = Field(
        "", description="override the inventory's wk_hashring_mode for this run")
    members: tuple[str, ...] = Field(
        (), description="receive pods for the catch-all ring (default: every Ready pod)")
    converge_timeout: float = Field(
        180.0, gt=0, le=3600, description="seconds to wait for every receiver to load the ring")
    rollback_on_failure: bool = Field(
        True, description="put the previous ring back when the proof fails")


class Hashring(Runbook):
    name = "hashring"
    summary = ("Build the Thanos Receive hashring from the Ready receivers, validate, diff,"
               " apply (ConfigMap or GitOps commit), prove every receiver loaded it")
    mutating = True
    playbook = "hashring.yml"
    Params = HashringParams
    changes = ("the hashring ConfigMap (direct mode) or a commit of its manifest to the GitOps"
               " repository (gitops mode), on observability clusters")
    rollback = ("inside the playbook: when convergence is not proven, the previous ring is"
                " applied again and proven the same way")
    applies_to = RECEIVERS
    requires = ("kube_context",)

    def validate(self, ctx: RunContext[HashringParams]) -> None:
        params = ctx.params
        for cluster in ctx.clusters:  # observability clusters only (applies_to)
            mode = params.mode or cluster.hashring_mode
            if mode == "gitops" and not (cluster.git_url and cluster.hashring_git_path):
                raise PreconditionFailed(
                    f"{cluster.name}: gitops mode needs wk_git_url and wk_hashring_git_path"
                    " (the hashring ConfigMap manifest in the repository); set them or run"
                    " with -e mode=direct")
            if "{" not in cluster.receive_endpoint_template:
                raise PreconditionFailed(
                    f"{cluster.name}: wk_receive_endpoint_template"
                    f" {cluster.receive_endpoint_template!r} has no field; use e.g."
                    " '{pod}.{service}.{namespace}.svc.cluster.local:{port}'")

    def extravars(self, ctx: RunContext[HashringParams]) -> dict[str, Any]:
        params = ctx.params
        return {"mode": params.mode, "members": list(params.members),
                "converge_timeout": params.converge_timeout,
                "rollback_on_failure": params.rollback_on_failure,
                "wk_receive_apps": receive_applications(ctx)}
