"""restore-tsdb: download a TSDB backup from S3 into a directory a Prometheus can start on.

Per cluster: pick the backup (the newest complete one, i.e. with a manifest, by default; or
-e backup=TIMESTAMP), download every file the manifest lists (boto3's transfer manager,
parallel) into a hidden directory beside target_dir, verify each file's size and sha256, and
only then move it to target_dir. A mismatch refuses and names the file; target_dir stays
untouched. Start a Prometheus with --storage.tsdb.path=target_dir to read the data.
Check mode names the backup, its blocks and time range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from runbooks import platform
from runbooks.backup import tsdb_checks as checks
from runbooks.backup.backup_tsdb import prefix_problem
from runbooks.errors import PreconditionFailed
from runbooks.model import Params, Runbook, RunContext


class RestoreTsdbParams(Params):
    target_dir: str = Field(
        description="directory to restore into (absent or empty; {cluster} is replaced by the"
        " cluster name, required when several clusters are selected)")
    backup: str = Field("", description="TIMESTAMP of the backup (default: the newest complete)")
    source_cluster: str = Field(
        "", description="restore another cluster's backup (default: the selected cluster's)")
    prefix: str = Field("prometheus-tsdb", description="key prefix in wk_s3_bucket_backups")
    concurrency: int = Field(10, ge=1, le=64, description="parallel S3 requests")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        problem = prefix_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip("/")

    @field_validator("target_dir")
    @classmethod
    def _target(cls, value: str) -> str:
        if not os.path.isabs(value):
            raise ValueError(f"target_dir {value!r}: an absolute path")
        return value

    @field_validator("backup")
    @classmethod
    def _backup(cls, value: str) -> str:
        if value and platform.s3_backup.parse_timestamp(value) is None:
            raise ValueError(f"backup {value!r}: a TIMESTAMP such as 20260101T000000Z")
        return value


class RestoreTsdb(Runbook):
    name = "restore-tsdb"
    summary = ("Download a Prometheus TSDB backup from S3 (newest complete by default) into a"
               " directory, verifying every file's sha256 against the manifest")
    mutating = True
    playbook = "restore-tsdb.yml"
    Params = RestoreTsdbParams
    requires = ("s3_bucket_backups",)
    changes = ("creates target_dir with the backup's blocks; never writes a live TSDB or an"
               " existing non-empty directory")
    rollback = "none: a failed restore removes its partial download; target_dir stays untouched"

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, RestoreTsdbParams)
        s3b = platform.s3_backup
        if len(ctx.clusters) > 1 and "{cluster}" not in params.target_dir:
            raise PreconditionFailed(
                f"{len(ctx.clusters)} clusters selected and one target_dir: put {{cluster}} in"
                " it (-e target_dir=/restore/{cluster}) or --limit one cluster")
        for cluster in ctx.clusters:
            target = Path(self.target(params, cluster.name))
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise PreconditionFailed(
                    f"{cluster.name}: target_dir {target} exists and is not empty: restore"
                    " into a new directory (a restore never overwrites)")
            parent = next((p for p in [target, *target.parents] if p.exists()), Path("/"))
            if not os.access(parent, os.W_OK):
                raise PreconditionFailed(f"{cluster.name}: cannot create {target}: {parent}"
                                         " is not writable by this user")
            client = checks.connect_s3(cluster, str(ctx.inventory.path))
            source = params.source_cluster or checks.cluster_name(cluster)
            base = s3b.backup_prefix(params.prefix, source, "")
            bucket = cluster.s3_bucket_backups
            if params.backup:
                if s3b.read_manifest(client, bucket, f"{base}{params.backup}/") is None:
                    raise PreconditionFailed(
                        f"{cluster.name}: s3://{bucket}/{base}{params.backup}/ has no"
                        " manifest.json: that backup does not exist or is incomplete; omit"
                        " -e backup for the newest complete one")
            elif s3b.newest_complete(client, bucket, base) is None:
                raise PreconditionFailed(
                    f"{cluster.name}: no complete backup under s3://{bucket}/{base}: run"
                    " backup-tsdb first, or fix -e prefix / -e source_cluster")

    @staticmethod
    def target(params: RestoreTsdbParams, cluster: str) -> str:
        return params.target_dir.replace("{cluster}", cluster)

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        return ctx.params.model_dump(mode="json")
