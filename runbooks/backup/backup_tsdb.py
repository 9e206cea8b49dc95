"""backup-tsdb: snapshot a full Prometheus server's TSDB and back it up to S3, manifest last.

Per cluster with wk_prometheus_url (a full server, e.g. an HA replica; never an agent):
1. validate: the server is not an agent (an agent has no TSDB and no snapshot API: back up the
   Thanos bucket instead), its admin API is on, its TSDB directory is visible here
   (wk_prometheus_tsdb_path), the backup bucket exists and the credentials work;
2. take a snapshot through the admin API (hard links under <tsdb>/snapshots/<name>);
3. upload it to s3://BUCKET/PREFIX/CLUSTER/TIMESTAMP/ with boto3's transfer manager (multipart,
   parallel), verify the listing (every key, every size), then write manifest.json last (files,
   sizes, sha256, block ULIDs, min/max time, source version); only then delete the snapshot;
4. retention: keep the newest backup of each of the last keep_daily days / keep_weekly weeks /
   keep_monthly months and always the newest complete one; delete incomplete backups (no
   manifest) older than this run, the leftovers of a failed or killed run.
A failed upload writes no manifest and skips retention. Check mode lists what would be uploaded
and deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from runbooks.backup import tsdb_checks as checks
from runbooks.model import Params, Runbook, RunContext


def prefix_problem(value: str) -> str | None:
    if value.startswith("/") or ".." in value.split("/") or "//" in value:
        return f"prefix {value!r}: a relative S3 key prefix such as prometheus-tsdb"
    return None


class BackupTsdbParams(Params):
    prefix: str = Field("prometheus-tsdb", description="key prefix in wk_s3_bucket_backups"
                        " (PREFIX/CLUSTER/TIMESTAMP/)")
    keep_daily: int = Field(7, ge=0, description="keep the newest backup of each of this many"
                            " days")
    keep_weekly: int = Field(4, ge=0, description="... of this many ISO weeks")
    keep_monthly: int = Field(6, ge=0, description="... of this many months (the newest"
                              " complete backup is always kept)")
    skip_head: bool = Field(False, description="leave the in-memory head out of the snapshot")
    concurrency: int = Field(10, ge=1, le=64, description="parallel S3 requests")
    chunk_size_mb: int = Field(8, ge=5, le=512, description="multipart part size (MiB)")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        problem = prefix_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip("/")


class BackupTsdb(Runbook):
    name = "backup-tsdb"
    summary = ("Snapshot a Prometheus server's TSDB (admin API), upload it to S3 with a manifest"
               " written last, verify, delete the snapshot, apply daily/weekly/monthly retention")
    mutating = True
    playbook = "backup-tsdb.yml"
    Params = BackupTsdbParams
    requires = ("s3_bucket_backups",)
    changes = ("creates a TSDB snapshot on the Prometheus host (deleted once uploaded); writes"
               " s3://BUCKET/PREFIX/CLUSTER/TIMESTAMP/ and its manifest.json; deletes backups"
               " beyond the retention and incomplete backups older than the run")
    rollback = ("none: a backup changes no live data; a failed upload leaves no manifest (so it"
                " never counts as a backup) and the next run deletes it")

    def validate(self, ctx: RunContext) -> None:
        for cluster in ctx.clusters:
            checks.require_prometheus_server(cluster, str(ctx.inventory.path))
            checks.connect_s3(cluster, str(ctx.inventory.path))

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        return ctx.params.model_dump(mode="json")
