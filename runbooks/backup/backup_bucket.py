"""backup-bucket: copy new Thanos blocks to the backup bucket, server-side, and verify them.

Per observability cluster (where wk_s3_bucket_blocks and wk_s3_bucket_backups are declared):
1. validate: the endpoint answers, the credentials work, both buckets exist, neither is the
   other, versioning is Enabled on both (or only warn with -e require_versioning=false);
2. list the blocks (ULID/ prefixes with meta.json) of the blocks bucket and of the backup
   prefix; skip blocks already backed up with equal sizes, leave out uploads in progress (no
   meta.json yet) and blocks marked for deletion;
3. copy the others with server-side copy (boto3's transfer manager: parallel, multipart copy
   for large objects): every file but meta.json, verify sizes, then meta.json. A block without
   meta.json in the backup is an unfinished copy and is redone by the next run, so a copy
   killed half-way is never counted as backed up;
4. check every backed-up block in the backup: meta.json, index, chunks/, sizes equal to the
   source. A complete copy that differs fails the run naming block and file (-e repair=true
   copies it again; versioning keeps the old version).
Check mode lists what would be copied and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from runbooks.backup import bucket_checks as checks
from runbooks.model import AppliesTo, Params, Runbook, RunContext


class BackupBucketParams(Params):
    source_prefix: str = Field(
        "", description="prefix of the blocks in wk_s3_bucket_blocks (Thanos objstore prefix)")
    target_prefix: str = Field(
        "thanos-blocks/", description="prefix of the block copies in wk_s3_bucket_backups")
    require_versioning: bool = Field(
        True, description="refuse when versioning is not Enabled on both buckets (false: warn)")
    repair: bool = Field(
        False, description="copy again a complete backup block whose sizes differ from the"
        " source (default: fail the run naming it)")
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


class BackupBucket(Runbook):
    name = "backup-bucket"
    summary = ("Copy new Thanos blocks to the backup bucket (server-side, meta.json last),"
               " skip those already there, verify meta.json, index, chunks/ and sizes")
    mutating = True
    playbook = "backup-bucket.yml"
    applies_to = AppliesTo("receivers' bucket", roles=("observability",))
    Params = BackupBucketParams
    changes = ("creates block copies under target_prefix in wk_s3_bucket_backups (redoes"
               " unfinished ones; with repair=true replaces copies that differ); never deletes"
               " or changes anything in wk_s3_bucket_blocks")
    rollback = ("none: copies are additions; an unfinished copy has no meta.json, is ignored"
                " by readers and redone by the next run")

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, BackupBucketParams)
        inventory = str(ctx.inventory.path)
        for cluster in checks.observability(ctx.clusters, self.name):
            checks.require_buckets(cluster, inventory)
            client = checks.connect(cluster, inventory)
            for field in ("s3_bucket_blocks", "s3_bucket_backups"):
                bucket = getattr(cluster, field)
                status = checks.versioning(client, cluster, bucket, field, inventory)
                if params.require_versioning:
                    checks.require_versioning(status, cluster, bucket, field)

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        return ctx.params.model_dump(mode="json")
