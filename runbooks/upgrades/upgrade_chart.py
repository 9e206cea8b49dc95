"""upgrade-chart: a component's Helm chart version (and values) changed by a commit, synced by
ArgoCD, gated, and reverted by a commit when a gate fails.

The procedure (the platform is deployed by ArgoCD from a GitOps repository, each component an
Application whose path is a Kustomization with `helmCharts:`):
1. validate: a version or values to change; the component's Application exists;
2. pre-gate: the Application is Synced and Healthy (never upgrade a component that is already
   broken or drifted: its failure would be blamed on the upgrade);
3. plan: clone the tracked branch, set the chart's version / merge the values, render the path
   before and after (`kubectl kustomize --enable-helm`), show the values diff, the rendered
   diff and the live objects that would change, and validate the result with a server-side
   dry-run apply (`--check` stops here, nothing committed);
4. commit (trailer `Watchkeeper-Run: <run id>`) and push to the tracked branch;
5. sync: ask ArgoCD to sync at exactly that commit (or wait for its automated sync, -e
   sync=wait), wait until Synced at it and Healthy, naming what is not (ImagePullBackOff ...);
6. post-gates: the Application Synced and Healthy; a canary sample written after the change
   reaches Query (ingestion and query work end to end);
7. rollback on any failure: a revert commit of this run's commits (never an imperative
   rollback that self-heal would undo, never a force-push), synced; StatefulSet pods stuck on
   the bad revision are deleted so they come back on the restored one.
A re-run after an interruption continues: the version already in git is not committed again,
the sync and the gates run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from runbooks.errors import PreconditionFailed
from runbooks.gates import (
    application_deployed,
    application_name,
    application_state,
    canary_after_change,
)
from runbooks.inventory import READY_TIMEOUT
from runbooks.model import Gate, Params, Runbook, RunContext


def _version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} was read as a number (1.10 would become 1.1): quote it,"
                         " -e 'version=\"1.10\"'")
    return value


class UpgradeChartParams(Params):
    component: str = Field("", description="the component, e.g. thanos-store (its Application:"
                           " wk_argocd_application_template)")
    application: str = Field("", description="the ArgoCD Application (overrides component)")
    chart: str = Field("", description="the helmCharts entry (default: the only one)")
    version: Annotated[str, BeforeValidator(_version)] = Field(
        "", description="the chart version to deploy")
    values: dict[str, Any] = Field(default_factory=dict,
                                   description="values merged into the chart's values")
    allow_downgrade: bool = Field(False, description="allow a change that runs an older Thanos"
                                  " or Prometheus than now")
    sync: Literal["request", "wait"] = Field(
        "request", description="request the sync, or wait for ArgoCD's automated sync")
    sync_timeout: float = Field(300.0, gt=0, le=3600,
                                description="seconds for Synced at the commit and Healthy")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, le=3600,
                                 description="seconds for each pod of a one-at-a-time rollout"
                                 " to be proven")
    canary_timeout: float = Field(120.0, gt=0, le=3600,
                                  description="seconds for a canary sample to reach Query")


class UpgradeChart(Runbook):
    name = "upgrade-chart"
    summary = ("Upgrade a component's Helm chart (version, values) by a commit to the GitOps"
               " repository: diff, dry run, commit, ArgoCD sync, gates, revert on failure")
    mutating = True
    playbook = "upgrade-chart.yml"
    rollback_playbook = "gitops-revert-run.yml"
    Params = UpgradeChartParams
    changes = ("a commit to the GitOps repository's tracked branch (the chart version and"
               " values in the component's Kustomization), synced by ArgoCD")
    rollback = ("a revert commit of this run's commits, synced; StatefulSet pods stuck on the"
                " bad revision recreated")
    requires = ("kube_context",)
    pre_gates: ClassVar[Sequence[Gate]] = (
        Gate("deployed before", "the component's Application Synced and Healthy",
             application_deployed),)
    post_gates: ClassVar[Sequence[Gate]] = (
        Gate("deployed", "the component's Application Synced and Healthy",
             application_deployed),
        Gate("canary in Query", "a canary sample written after the change reaches Query"
             " (wk_canary_query)", canary_after_change))

    def validate(self, ctx: RunContext[Any]) -> None:
        params = ctx.params
        if not params.version and not params.values:
            raise PreconditionFailed("nothing to change: give -e version=<chart version>"
                                     " and/or -e values='{...}'")
        for cluster in ctx.clusters:
            if cluster.query_url is None:
                raise PreconditionFailed(f"{cluster.name}: wk_query_url is not set (the"
                                         " canary post-gate reads Query)")
            application_state(cluster, application_name(cluster, params))

    # RunContext[Any]: upgrade-thanos and upgrade-prometheus extend these params.
    def extravars(self, ctx: RunContext[Any]) -> dict[str, Any]:
        params = ctx.params
        apps = {c.name: application_name(c, params) for c in ctx.clusters}
        return {**params.model_dump(mode="json"), "wk_apps": apps}
