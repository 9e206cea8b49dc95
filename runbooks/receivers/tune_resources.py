"""tune-resources: requests and limits recommended from observed usage, as a manifest diff.

Per selected cluster: the workload's busiest pod's memory (95th percentile and peak) and CPU
(95th percentile) over the window, queried from Thanos Query (wk_usage_*_query, cAdvisor by
default); the recommendation (plugins/module_utils/resources.py: request = p95 x headroom,
memory limit = peak x limit factor, no CPU limit); the current resources, the diff
(`--diff`) and a strategic-merge patch in the step's result. Read-only: apply the change
through the GitOps repository.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from runbooks.model import Params, Runbook, RunContext


class TuneParams(Params):
    kind: Literal["StatefulSet", "Deployment"] = "StatefulSet"
    workload: str = Field("prometheus-agent", description="the StatefulSet or Deployment")
    container: str = Field("", description="container name (default: the first)")
    window: str = Field("1h", description="usage window, a PromQL duration (e.g. 1h, 7d)")
    headroom: float = Field(1.2, ge=1.0, le=5.0, description="requests = p95 x headroom")
    limit_factor: float = Field(1.5, ge=1.0, le=10.0,
                                description="memory limit = peak x limit_factor")

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]+[smhdw]", value):
            raise ValueError("a PromQL duration such as 30m, 1h, 7d")
        return value


class TuneResources(Runbook):
    name = "tune-resources"
    summary = "Recommend requests and limits from observed usage, shown as a manifest diff"
    playbook = "tune-resources.yml"
    Params = TuneParams
    requires = ("kube_context", "query_url")

    def extravars(self, ctx: RunContext) -> dict[str, Any]:
        return ctx.params.model_dump(mode="json")
