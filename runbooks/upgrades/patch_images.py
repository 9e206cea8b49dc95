"""patch-images: a patched image tag of one component rolled across clusters in waves.

1. validate: the component and the tag; the canary (`-e canary`, default the first selected
   cluster) is one of the selected clusters; every cluster has the component's Application;
2. pre-gate: each Application Synced and Healthy;
3. the canary cluster first, then the other clusters `max_parallel` at a time (Ansible's
   `serial`): per cluster, the tag committed to the component's values (`image.tag`), the
   release notes checked (a downgrade refused unless allowed), synced at the commit, Synced
   and Healthy, every expected job of a workload cluster fresh in Query again. The first
   cluster that fails stops the waves: no later wave starts;
4. post-gates: every Application Synced and Healthy; the images each cluster runs (the
   report's table of which cluster runs which version);
5. rollback on a failure: the run's commits reverted per cluster (each Application's own),
   synced; clusters the run never reached are untouched.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from runbooks import platform
from runbooks.clients import kube_api
from runbooks.errors import PreconditionFailed
from runbooks.gates import application_deployed, application_name, application_state
from runbooks.inventory import READY_TIMEOUT, ClusterConfig
from runbooks.model import Gate, GateResult, Params, Runbook, RunContext


def _tag(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} was read as a number: quote it, -e 'tag=\"v3.1\"'")
    return value


class PatchImagesParams(Params):
    component: str = Field(description="the component, e.g. prometheus-agent (its Application:"
                           " wk_argocd_application_template)")
    application: str = Field("", description="the ArgoCD Application (overrides component)")
    tag: Annotated[str, BeforeValidator(_tag)] = Field(
        description="the image tag to run ('' returns to the chart's own)")
    chart: str = Field("", description="the helmCharts entry (default: the only one)")
    canary: str = Field("", description="the cluster patched first, alone (default: the first"
                        " selected cluster)")
    max_parallel: int = Field(1, ge=1, le=100, description="clusters per wave after the canary")
    allow_downgrade: bool = Field(False, description="allow a tag older than the running one")
    sync_timeout: float = Field(300.0, gt=0, le=3600,
                                description="seconds for Synced at the commit and Healthy")
    ready_timeout: float = Field(READY_TIMEOUT, gt=0, le=3600,
                                 description="seconds for a workload to be Ready")
    settle_timeout: float = Field(120.0, ge=0, le=3600, description="seconds for a workload"
                                  " cluster's jobs to be fresh in Query again")


def running_images(ctx: RunContext[Any], cluster: ClusterConfig) -> GateResult:
    """The images the component's Application runs on this cluster (ArgoCD's
    status.summary.images), for the report."""
    name = application_name(cluster, ctx.params)
    app = platform.argocd_app.read(kube_api(cluster), cluster.argocd_namespace, name)
    images = ((app.get("status") or {}).get("summary") or {}).get("images") or []
    tag = ctx.params.tag
    wrong = [i for i in images if tag and not i.endswith(":" + tag)]
    text = f"{name} runs {', '.join(images) or 'no image'}"
    return GateResult(not wrong, text + (f" (not {tag})" if wrong else ""))


class PatchImages(Runbook):
    name = "patch-images"
    summary = ("Roll a patched image tag of a component across clusters in waves (canary"
               " first, then --max-parallel), by commits, stopping at the first failure")
    mutating = True
    playbook = "patch-images.yml"
    rollback_playbook = "gitops-revert-run.yml"
    Params = PatchImagesParams
    changes = ("a commit per cluster to the GitOps repository (the component's image.tag),"
               " synced by ArgoCD, wave by wave")
    rollback = "the run's commits reverted per cluster, synced; clusters not reached untouched"
    requires = ("kube_context",)
    pre_gates = (Gate("deployed before", "the component's Application Synced and Healthy",
                      application_deployed),)
    post_gates = (Gate("deployed", "the component's Application Synced and Healthy",
                       application_deployed),
                  Gate("images", "the images the component runs on each cluster",
                       running_images))

    def validate(self, ctx: RunContext[PatchImagesParams]) -> None:
        names = [c.name for c in ctx.clusters]
        if ctx.params.canary and ctx.params.canary not in names:
            raise PreconditionFailed(f"canary {ctx.params.canary!r} is not among the selected"
                                     f" clusters ({', '.join(names)}); fix -e canary or"
                                     " --limit")
        for cluster in ctx.clusters:
            application_state(cluster, application_name(cluster, ctx.params))

    def extravars(self, ctx: RunContext[PatchImagesParams]) -> dict[str, Any]:
        params = ctx.params
        return {**params.model_dump(mode="json"),
                "wk_apps": {c.name: application_name(c, params) for c in ctx.clusters},
                "wk_canary": params.canary or ctx.clusters[0].name}
