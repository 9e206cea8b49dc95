"""backup-opensearch: snapshot the log indices, verify the snapshot, apply retention.

Per cluster with wk_opensearch_url: ensure the `fs` snapshot repository (under the nodes'
path.repo), snapshot the configured index patterns with the document count of each index in the
snapshot's manifest (index watchkeeper-snapshots, which every snapshot includes), wait with
progress, and pass only when the state is SUCCESS and every shard succeeded (PARTIAL or FAILED
fails the run, and retention does not run). Then delete this
runbook's snapshots older than max_age_days or beyond max_count, never going below min_count
successful snapshots and never deleting the newest successful one. Check mode lists what would
be created and deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from runbooks.backup import opensearch_checks as checks
from runbooks.model import AppliesTo, Params, Runbook, RunContext


def as_list(value: Any) -> Any:
    """`-e indices=logs-*` gives a string; `-e 'indices=[a-*, b-*]'` a list: accept both."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class BackupOpenSearchParams(Params):
    indices: list[str] = Field(
        ["logs-*"],
        description="index patterns to snapshot (a list, or one pattern)")
    repository: str = Field("watchkeeper", description="snapshot repository name")
    repository_location: str = Field(
        "", description="fs repository directory, relative to the nodes' path.repo (default:"
        " the repository name)")
    snapshot_prefix: str = Field(
        "watchkeeper-", description="snapshots are named PREFIX + run id; retention manages only"
        " snapshots with this prefix")
    partial: bool = Field(
        False, description="snapshot even with red indices; such a snapshot ends PARTIAL and"
        " the run fails")
    wait_timeout: int = Field(3600, gt=0, le=86400,
                              description="seconds to wait for the snapshot to end")
    max_age_days: float | None = Field(
        30.0, gt=0, description="delete managed snapshots older than this (null: no age limit)")
    max_count: int | None = Field(
        50, ge=1, description="keep at most this many managed snapshots (null: no count limit)")
    min_count: int = Field(
        3, ge=1, description="always keep this many successful snapshots (the newest successful"
        " one is always kept)")

    _list = field_validator("indices", mode="before")(as_list)

    @field_validator("indices")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one index pattern, e.g. -e indices=logs-*")
        for pattern in value:
            problem = checks.pattern_problem(pattern, "indices")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("repository", "snapshot_prefix")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        problem = checks.name_problem(value, info.field_name or "name")
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _retention(self) -> BackupOpenSearchParams:
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError(f"max_count ({self.max_count}) is below min_count"
                             f" ({self.min_count}): raise -e max_count or lower -e min_count")
        if self.repository_location.startswith(".."):
            raise ValueError("repository_location must stay under path.repo")
        return self

    @property
    def location(self) -> str:
        return self.repository_location or self.repository


class BackupOpenSearch(Runbook):
    name = "backup-opensearch"
    summary = ("Snapshot OpenSearch index patterns to an fs repository, verify SUCCESS and"
               " shard counts, apply retention (max age / max count / min count)")
    mutating = True
    playbook = "backup-opensearch.yml"
    Params = BackupOpenSearchParams
    applies_to = AppliesTo("OpenSearch", fields=("opensearch_url",))
    changes = ("registers the snapshot repository if missing; writes the snapshot's manifest"
               " (document counts) into the index watchkeeper-snapshots; creates one snapshot;"
               " deletes this runbook's snapshots (and manifests) beyond the retention limits")
    rollback = ("none: a snapshot is not a change to the indices; a failed snapshot stays for"
                " inspection and retention removes it later")

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, BackupOpenSearchParams)
        for cluster in ctx.clusters:
            client = checks.connect(cluster, str(ctx.inventory.path))
            checks.require_path_repo(client, cluster)
            checks.require_repository_compatible(client, cluster, params.repository,
                                                 params.location)
            checks.require_indices(client, cluster, params.indices, allow_red=params.partial)

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        params = ctx.params
        assert isinstance(params, BackupOpenSearchParams)
        return {**params.model_dump(mode="json"), "repository_location": params.location}
