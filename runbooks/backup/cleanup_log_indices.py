"""cleanup-log-indices: delete log indices matching a pattern that are older than N days.

Per cluster with wk_opensearch_url: list the indices matching `pattern` (open and closed, never
hidden or system ones) and delete, by exact name, those older than `older_than_days` by the
date in their name (logs-YYYY.MM.DD, `date_format`) or by their creation date
(-e date_source=creation). An index without a date in its name is kept. Check mode lists
exactly what would go. OpenSearch has no Curator, so this is ours.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from runbooks.backup import opensearch_checks as checks
from runbooks.model import AppliesTo, Params, Runbook, RunContext

_DIRECTIVE = re.compile(r"%(.)")
_SUPPORTED = set("Ymdjy" + "H")


class CleanupLogIndicesParams(Params):
    pattern: str = Field("logs-*", description="one index pattern with a literal prefix")
    older_than_days: int = Field(30, ge=1, description="delete indices older than this")
    date_source: Literal["name", "creation"] = Field(
        "name", description="age from the date in the index name, or from its creation date")
    date_format: str = Field("%Y.%m.%d", description="strftime format of the date in names")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        problem = checks.pattern_problem(value, "pattern")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("date_format")
    @classmethod
    def _format(cls, value: str) -> str:
        directives = set(_DIRECTIVE.findall(value))
        if not directives & {"Y", "y"}:
            raise ValueError(f"date_format {value!r} has no year (%Y), e.g. %Y.%m.%d")
        unknown = directives - _SUPPORTED
        if unknown:
            raise ValueError(f"date_format {value!r}: {', '.join('%' + d for d in sorted(unknown))}"
                             " not supported (use %Y %m %d %j %y %H)")
        return value


class CleanupLogIndices(Runbook):
    name = "cleanup-log-indices"
    summary = ("Delete OpenSearch indices matching a pattern older than N days (date in the"
               " name or creation date)")
    mutating = True
    playbook = "cleanup-log-indices.yml"
    Params = CleanupLogIndicesParams
    applies_to = AppliesTo("OpenSearch", fields=("opensearch_url",))
    changes = "deletes the matching indices older than older_than_days (by exact name)"
    rollback = ("none: deleted indices come back only from a snapshot (restore-opensearch);"
                " run with --check first")

    def validate(self, ctx: RunContext) -> None:
        for cluster in ctx.clusters:
            checks.connect(cluster, str(ctx.inventory.path))
