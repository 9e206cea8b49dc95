"""The GitOps workflow: gitops-sync, gitops-history and gitops-rollback.

The platform is deployed by ArgoCD from a GitOps repository, one Application per component and
cluster (wk_argocd_application_template). Each runbook works on the Application of
`-e component` (or `-e application`) on every selected cluster:

- gitops-sync: deploy the tracked branch's head (or `-e revision`): ask ArgoCD to sync at
  exactly that commit, or wait for its automated sync (`-e sync=wait`); wait until Synced at it
  and Healthy; name each resource that is OutOfSync or Degraded and its pods' waiting reasons.
  `--check` shows the Application's state and the commit it would deploy.
- gitops-history: the Application's deployments (revision, when, automated or by whom) with
  their commits (subject, author), and the commits not deployed yet. Read-only.
- gitops-rollback: revert `-e commit` (one or more) by a new commit on the tracked branch,
  sync it, gate it (Synced and Healthy). Never an imperative rollback (`argocd app rollback`
  or kubectl): self-heal or the next sync would undo it, and git would no longer say what runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from runbooks.errors import PreconditionFailed
from runbooks.gates import application_deployed, application_name, application_state
from runbooks.model import Gate, Params, Runbook, RunContext


class ApplicationParams(Params):
    component: str = Field("", description="the component, e.g. thanos-store (its Application:"
                           " wk_argocd_application_template)")
    application: str = Field("", description="the ArgoCD Application (overrides component)")


def _apps(ctx: RunContext[Any]) -> dict[str, str]:
    apps = {}
    for cluster in ctx.clusters:
        name = application_name(cluster, ctx.params)
        application_state(cluster, name)  # exists
        apps[cluster.name] = name
    return apps


class GitopsSyncParams(ApplicationParams):
    revision: str = Field("", description="the commit to deploy (default: the tracked branch's"
                          " head)")
    sync: Literal["request", "wait"] = Field(
        "request", description="request the sync, or wait for ArgoCD's automated sync")
    sync_timeout: float = Field(300.0, gt=0, le=3600,
                                description="seconds for Synced at the commit and Healthy")


class GitopsSync(Runbook):
    name = "gitops-sync"
    summary = ("Deploy what git says: sync a component's Application at the branch head (or a"
               " commit), wait for Synced and Healthy, name what is not")
    mutating = True
    playbook = "gitops-sync.yml"
    Params = GitopsSyncParams
    changes = "the component's live objects, to what the commit says (an ArgoCD sync)"
    rollback = "none: git is unchanged (revert the commit with gitops-rollback)"
    requires = ("kube_context",)
    post_gates = (Gate("deployed", "the component's Application Synced and Healthy",
                       application_deployed),)

    def extravars(self, ctx: RunContext[GitopsSyncParams]) -> dict[str, Any]:
        return {**ctx.params.model_dump(mode="json"), "wk_apps": _apps(ctx)}


class GitopsHistoryParams(ApplicationParams):
    limit: int = Field(10, ge=1, le=100, description="how many deployments to show")


class GitopsHistory(Runbook):
    name = "gitops-history"
    summary = ("A component's deployments (revision, when, by whom) with their commits, and"
               " the commits not deployed yet")
    playbook = "gitops-history.yml"
    Params = GitopsHistoryParams
    requires = ("kube_context",)

    def extravars(self, ctx: RunContext[GitopsHistoryParams]) -> dict[str, Any]:
        return {**ctx.params.model_dump(mode="json"), "wk_apps": _apps(ctx)}


def _commits(value: Any) -> Any:
    """`-e commit=abc123` or `-e commit=abc123,def456` or a YAML list; a value YAML read as a
    number is refused (its digits may have changed on the way)."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} was read as a number, not a commit: quote it,"
                                 " -e 'commit=\"0123456\"'")
        return tuple(v.strip() for v in value if v.strip())
    raise ValueError("a commit sha, a comma-separated list of them, or a YAML list")


class GitopsRollbackParams(ApplicationParams):
    commit: Annotated[tuple[str, ...], BeforeValidator(_commits)] = Field(
        (), description="the commit(s) to revert, newest first (gitops-history lists them)")
    sync_timeout: float = Field(300.0, gt=0, le=3600,
                                description="seconds for Synced at the revert and Healthy")


class GitopsRollback(Runbook):
    name = "gitops-rollback"
    summary = ("Roll a component back by a revert commit of the named commit(s), synced and"
               " gated (never an imperative rollback that self-heal would undo)")
    mutating = True
    playbook = "gitops-rollback.yml"
    Params = GitopsRollbackParams
    changes = "a revert commit on the GitOps repository's tracked branch, synced by ArgoCD"
    rollback = "none automatic: the revert is itself a commit (revert it to go forward again)"
    requires = ("kube_context",)
    post_gates = (Gate("deployed", "the component's Application Synced and Healthy",
                       application_deployed),)

    def validate(self, ctx: RunContext[GitopsRollbackParams]) -> None:
        if not ctx.params.commit:
            raise PreconditionFailed("name the commit(s) to revert: -e commit=<sha>"
                                     " (gitops-history lists the deployments)")

    def extravars(self, ctx: RunContext[GitopsRollbackParams]) -> dict[str, Any]:
        return {**ctx.params.model_dump(mode="json"), "wk_apps": _apps(ctx)}
