"""restore-bucket: Thanos blocks from the backup bucket back into a bucket or a scratch prefix.

Per observability cluster:
1. validate: the endpoint answers, the credentials work, the backup bucket and the target
   bucket exist; the time range is ordered;
2. select the complete block copies (with meta.json) under source_prefix in
   wk_s3_bucket_backups: all, or those whose [minTime, maxTime) from meta.json overlaps
   min_time .. max_time;
3. refuse, before copying anything, when a selected block already exists in the target and
   differs from the backup (-e overwrite=true replaces it); skip those already there with equal
   sizes;
4. copy server-side, meta.json last after the other files' sizes are verified, and compare the
   sizes of every selected block in the target with the backup.
Check mode lists the blocks it would restore and changes nothing. Restoring into a scratch
prefix (-e target_prefix=restore-drill/) leaves the live bucket alone; Thanos reads only the
bucket's root (or its objstore prefix).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from runbooks.backup import bucket_checks as checks
from runbooks.model import AppliesTo, Params, Runbook, RunContext


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a time without a zone is UTC, as in Thanos
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class RestoreBucketParams(Params):
    source_prefix: str = Field(
        "thanos-blocks/", description="prefix of the block copies in wk_s3_bucket_backups")
    target_bucket: str = Field(
        "", description="bucket to restore into (default: wk_s3_bucket_blocks)")
    target_prefix: str = Field(
        "", description="prefix in the target bucket, e.g. restore-drill/ for a scratch copy"
        " (empty: the bucket's root, where Thanos reads)")
    min_time: datetime | None = Field(
        None, description="restore only blocks ending after this time (RFC 3339, or Unix"
        " seconds); default: no lower bound")
    max_time: datetime | None = Field(
        None, description="restore only blocks starting at or before this time; default: no"
        " upper bound")
    overwrite: bool = Field(
        False, description="replace blocks already in the target that differ from the backup")
    concurrency: int = Field(8, ge=1, le=64, description="parallel copies")
    multipart_threshold_mib: float = Field(
        64, ge=5, le=5120, description="objects from this size are copied in parts of this size")

    @field_validator("source_prefix", "target_prefix")
    @classmethod
    def _prefix(cls, value: str, info: Any) -> str:
        problem = checks.prefix_problem(value, info.field_name)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _range(self) -> RestoreBucketParams:
        start, end = _ms(self.min_time), _ms(self.max_time)
        if start is not None and end is not None and start > end:
            raise ValueError(f"min_time ({self.min_time}) is after max_time ({self.max_time})")
        return self


class RestoreBucket(Runbook):
    name = "restore-bucket"
    summary = ("Restore Thanos blocks (all, or a time range) from the backup bucket into a"
               " bucket or a scratch prefix, meta.json last, sizes verified")
    mutating = True
    playbook = "restore-bucket.yml"
    applies_to = AppliesTo("receivers' bucket", roles=("observability",))
    Params = RestoreBucketParams
    changes = ("creates block copies under target_prefix in target_bucket (default"
               " wk_s3_bucket_blocks); replaces differing blocks there only with overwrite=true")
    rollback = ("none: restored blocks are additions; delete the target prefix when a drill is"
                " done (a block without meta.json is an unfinished restore, ignored by Thanos)")

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, RestoreBucketParams)
        inventory = str(ctx.inventory.path)
        for cluster in checks.observability(ctx.clusters, self.name):
            if not cluster.s3_bucket_backups:
                raise checks.PreconditionFailed(
                    f"{cluster.name}: wk_s3_bucket_backups is not set: add it to the cluster's"
                    f" host_vars in {inventory}")
            client = checks.connect(cluster, inventory)
            checks.versioning(client, cluster, cluster.s3_bucket_backups, "s3_bucket_backups",
                              inventory)
            target = params.target_bucket or cluster.s3_bucket_blocks
            if not target:
                raise checks.PreconditionFailed(
                    f"{cluster.name}: no target bucket: pass -e target_bucket=NAME or set"
                    f" wk_s3_bucket_blocks in {inventory}")
            field = "s3_bucket_blocks" if not params.target_bucket else "s3_bucket_blocks" \
                " (-e target_bucket)"
            checks.versioning(client, cluster, target, field, inventory)
            if target == cluster.s3_bucket_backups and params.target_prefix == \
                    params.source_prefix:
                raise checks.PreconditionFailed(
                    f"{cluster.name}: the restore target s3://{target}/{params.target_prefix}"
                    " is the backup itself: pick another -e target_prefix")

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        params = ctx.params
        assert isinstance(params, RestoreBucketParams)
        return {"source_prefix": params.source_prefix, "target_bucket": params.target_bucket,
                "target_prefix": params.target_prefix, "min_time_ms": _ms(params.min_time),
                "max_time_ms": _ms(params.max_time), "overwrite": params.overwrite,
                "concurrency": params.concurrency,
                "multipart_threshold_mib": params.multipart_threshold_mib}
