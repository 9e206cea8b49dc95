"""restore-opensearch: restore a snapshot into renamed indices and compare document counts.

Per cluster with wk_opensearch_url: pick the snapshot (the newest successful one by default),
name each restored index with rename_pattern / rename_replacement (default: `restored-` in front),
refuse before restoring when a new name is an index of the snapshot or an index that exists,
restore without global state or aliases, wait for the primaries, then compare each restored
index's document count with the count the backup recorded in the snapshot (or with the live
index: -e compare_with=live; the recorded counts are read from the snapshot's own manifest,
restored under a temporary wk-manifest-* name and deleted). Any difference fails the run.
Check mode lists the snapshot and the indices it would create. Live indices are never written.
With -e in_place=true (disaster recovery), the snapshot's indices that no longer exist come back
under their own names; an index that exists is left alone.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from runbooks.backup import opensearch_checks as checks
from runbooks.backup.backup_opensearch import as_list
from runbooks.model import AppliesTo, Params, Runbook, RunContext


class RestoreOpenSearchParams(Params):
    repository: str = Field("watchkeeper", description="snapshot repository")
    snapshot: str = Field("", description="snapshot to restore (default: the newest successful)")
    indices: list[str] = Field(
        [],
        description="patterns selecting the snapshot's indices to restore (default: all)")
    rename_pattern: str = Field("(.+)", description="regular expression applied to each name")
    rename_replacement: str = Field(
        "restored-$1", description="new name, $1 for the first group (must differ from the"
        " source)")
    compare_with: Literal["snapshot", "live"] = Field(
        "snapshot", description="compare document counts with the counts recorded in the"
        " snapshot by backup-opensearch, or with the live source indices")
    in_place: bool = Field(
        False, description="disaster recovery: restore the snapshot's indices that no longer"
        " exist under their own names (rename_* unused); existing indices are left alone")
    wait_timeout: int = Field(3600, gt=0, le=86400,
                              description="seconds to wait for the restored primaries")

    _list = field_validator("indices", mode="before")(as_list)

    @field_validator("indices")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            problem = checks.pattern_problem(pattern, "indices")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("repository", "snapshot")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        if value == "" and info.field_name == "snapshot":
            return value
        problem = checks.name_problem(value, info.field_name or "name")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("rename_pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", value))  # Java's named groups
        except re.error as exc:
            raise ValueError(f"rename_pattern {value!r} is not a regular expression: {exc}"
                             ) from exc
        return value

    @field_validator("rename_replacement")
    @classmethod
    def _replacement(cls, value: str) -> str:
        if value.strip() in ("", "$0", "$1", "${1}"):
            raise ValueError("rename_replacement must add something to the name, e.g."
                             " restored-$1 (restoring under the same name would overwrite)")
        return value


    @model_validator(mode="after")
    def _in_place_counts(self) -> RestoreOpenSearchParams:
        if self.in_place and self.compare_with == "live":
            raise ValueError("compare_with=live cannot check an in-place restore (the live"
                             " indices are the ones that are gone): use compare_with=snapshot")
        return self


class RestoreOpenSearch(Runbook):
    name = "restore-opensearch"
    summary = ("Restore an OpenSearch snapshot into renamed indices and compare document"
               " counts with the snapshot (or the live indices)")
    mutating = True
    playbook = "restore-opensearch.yml"
    Params = RestoreOpenSearchParams
    applies_to = AppliesTo("OpenSearch", fields=("opensearch_url",))
    changes = ("creates the restored (renamed) indices and, for the count comparison, a"
               " temporary wk-manifest-* index it deletes; never writes a live or existing index")
    rollback = ("none: the restored indices stay for inspection; delete them when done"
                " (DELETE /restored-*)")

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, RestoreOpenSearchParams)
        for cluster in ctx.clusters:
            client = checks.connect(cluster, str(ctx.inventory.path))
            checks.require_repository(client, cluster, params.repository)
