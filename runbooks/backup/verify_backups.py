"""verify-backups: restore the newest complete backup of each kind into scratch and check it.

Per cluster, for each kind the inventory declares (the others are `skipped`):
1. tsdb: backup-tsdb's newest backup with a manifest is downloaded into a scratch directory with
   every sha256 verified (restore-tsdb's module), a real Prometheus is started on it on a free
   loopback port, and its series and sample time range are checked against the manifest;
2. bucket: backup-bucket's newest block copies are restored into a scratch prefix of the
   backup bucket (restore-bucket's module) and served by `thanos store` + `thanos query`;
   series and time range are checked through the Query API;
3. opensearch: backup-opensearch's newest snapshot is restored into scratch indices
   (restore-opensearch's module) and their document counts compared with the counts recorded
   at backup time;
4. everything scratch is deleted (also after a failure); each kind becomes a check (ok with
   the evidence, fail with the reason, skipped), and each verified kind advances
   `watchkeeper_backup_last_verified_timestamp_seconds{kind,cluster}` in the textfile-collector
   directory (and the Pushgateway). A declared kind without any backup fails; so does one
   that cannot be verified (no prometheus / thanos program: wk_prometheus_binary,
   wk_thanos_binary, -e prometheus_binary / thanos_binary), unless skipped by name
   (`-e skip=bucket`).
Check mode says what it would restore and check, and changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from runbooks.collection import state_dir
from runbooks.errors import PreconditionFailed
from runbooks.inventory import ClusterConfig
from runbooks.model import Params, Runbook, RunContext

#: Where Debian installs Prometheus (the lab's and our CI's).
DEFAULT_PROMETHEUS = "/usr/bin/prometheus"


class VerifyBackupsParams(Params):
    tsdb_prefix: str = Field("prometheus-tsdb",
                             description="backup-tsdb's key prefix in wk_s3_bucket_backups")
    bucket_prefix: str = Field(
        "thanos-blocks/", description="backup-bucket's prefix of the block copies")
    bucket_window_hours: float = Field(
        6, gt=0, le=24 * 365,
        description="restore and check the block copies of the last N hours of the backup")
    repository: str = Field("watchkeeper", description="backup-opensearch's snapshot repository")
    scratch_dir: str = Field(
        "", description="local scratch root (default: the system's temporary directory"
        " /watchkeeper-verify); each run works in a directory of its own there")
    scratch_prefix: str = Field(
        "wk-verify-scratch/", description="scratch prefix in wk_s3_bucket_backups for the"
        " restored blocks (each run uses a prefix of its own under it, deleted at the end)")
    prometheus_binary: str = Field(
        "", description="the prometheus program, over the inventory's wk_prometheus_binary"
        " (default: /usr/bin/prometheus, else PATH); absent: a declared tsdb kind fails")
    thanos_binary: str = Field(
        "", description="the thanos program, over the inventory's wk_thanos_binary (default:"
        " thanos on PATH); absent: a declared bucket kind fails")
    skip: tuple[Literal["tsdb", "bucket", "opensearch"], ...] = Field(
        (), description="kinds not to verify, by name, comma separated (e.g. -e skip=bucket);"
        " a declared kind that cannot be verified otherwise fails the run")
    textfile_dir: str = Field(
        "", description="textfile-collector directory for the verification metrics (default:"
        " $WATCHKEEPER_TEXTFILE_DIR, else the state directory's metrics/)")
    pushgateway: str = Field(
        "", description="Pushgateway URL (default: $WATCHKEEPER_PUSHGATEWAY; empty: no push)")

    @field_validator("skip", mode="before")
    @classmethod
    def _skip(cls, value: Any) -> Any:
        if isinstance(value, str):  # -e skip=bucket,tsdb
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("tsdb_prefix")
    @classmethod
    def _tsdb_prefix(cls, value: str) -> str:
        if not value.strip("/") or value.startswith("/") or ".." in value.split("/"):
            raise ValueError(f"tsdb_prefix {value!r}: a relative key prefix")
        return value.strip("/")

    @field_validator("bucket_prefix", "scratch_prefix")
    @classmethod
    def _prefix(cls, value: str, info: Any) -> str:
        if value.startswith("/") or (value and not value.endswith("/")) or ".." in \
                value.split("/"):
            raise ValueError(f"{info.field_name} {value!r}: a relative prefix ending in /")
        if info.field_name == "scratch_prefix" and not value:
            raise ValueError("scratch_prefix must not be empty (the bucket's root holds the"
                             " backups)")
        return value

    @field_validator("scratch_dir")
    @classmethod
    def _scratch(cls, value: str) -> str:
        if value and not os.path.isabs(value):
            raise ValueError(f"scratch_dir {value!r}: an absolute path")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9._-]*$", value):
            raise ValueError(f"repository {value!r}: a lower-case snapshot repository name")
        return value


def program(explicit: str, name: str, default: str = "") -> str:
    """The program to start: the explicit path, else `default` when it exists, else PATH;
    '' when there is none (the kind is then skipped with the reason)."""
    if explicit:
        return explicit
    if default and os.access(default, os.X_OK):
        return default
    return shutil.which(name) or ""


class VerifyBackups(Runbook):
    name = "verify-backups"
    summary = ("Restore the newest backup of each kind (TSDB, Thanos bucket, OpenSearch) into"
               " scratch, check its content through a real Prometheus / Thanos or document"
               " counts, record watchkeeper_backup_last_verified_timestamp_seconds")
    mutating = True
    playbook = "verify-backups.yml"
    Params = VerifyBackupsParams
    changes = ("creates and deletes scratch copies only: a local directory, a prefix under"
               " scratch_prefix in wk_s3_bucket_backups (every version), wk-verify-* indices;"
               " writes the verification metrics; never writes a backup or live data")
    rollback = ("none needed: every scratch copy is deleted by the run itself, also after a"
                " failure")

    def validate(self, ctx: RunContext) -> None:
        params = ctx.params
        assert isinstance(params, VerifyBackupsParams)
        for kind, field in (("tsdb", "prometheus_binary"), ("bucket", "thanos_binary")):
            if kind in params.skip:
                continue
            value = getattr(params, field)
            if value:
                if not os.access(value, os.X_OK):
                    raise PreconditionFailed(f"-e {field}={value}: not an executable program")
                continue
            for cluster in ctx.clusters:
                value = getattr(cluster, field)
                if value and not os.access(value, os.X_OK):
                    raise PreconditionFailed(
                        f"{cluster.name}: wk_{field} {value}: not an executable program (fix"
                        f" it in {ctx.inventory.path}, override it with -e {field}=PATH, or"
                        f" -e skip={kind})")
        scratch = self.scratch_root(params)
        parent = next((p for p in [scratch, *self._parents(scratch)] if os.path.exists(p)),
                      "/")
        if not os.access(parent, os.W_OK):
            raise PreconditionFailed(f"scratch_dir {scratch}: {parent} is not writable by this"
                                     " user (-e scratch_dir=...)")

    @staticmethod
    def _parents(path: str) -> list[str]:
        out = []
        while os.path.dirname(path) != path:
            path = os.path.dirname(path)
            out.append(path)
        return out

    @staticmethod
    def programs(params: VerifyBackupsParams, cluster: ClusterConfig) -> dict[str, str]:
        """The programs the checks start for `cluster`: -e, else the inventory, else the
        default place or PATH ('' when there is none: a declared kind then fails)."""
        return {
            "prometheus": program(params.prometheus_binary or cluster.prometheus_binary,
                                  "prometheus", DEFAULT_PROMETHEUS),
            "thanos": program(params.thanos_binary or cluster.thanos_binary, "thanos"),
        }

    @staticmethod
    def scratch_root(params: VerifyBackupsParams) -> str:
        return params.scratch_dir or os.path.join(tempfile.gettempdir(), "watchkeeper-verify")

    def extravars(self, ctx: RunContext) -> Mapping[str, Any]:
        params = ctx.params
        assert isinstance(params, VerifyBackupsParams)
        textfiles = (params.textfile_dir or os.environ.get("WATCHKEEPER_TEXTFILE_DIR")
                     or str(state_dir() / "metrics"))
        return {
            "tsdb_prefix": params.tsdb_prefix, "bucket_prefix": params.bucket_prefix,
            "bucket_window_hours": params.bucket_window_hours,
            "repository": params.repository, "scratch_dir": self.scratch_root(params),
            "scratch_prefix": params.scratch_prefix,
            "wk_verify_programs": {c.name: self.programs(params, c) for c in ctx.clusters},
            "wk_verify_skip": list(params.skip),
            "wk_verify_textfile_dir": textfiles,
            "wk_verify_pushgateway": params.pushgateway
            or os.environ.get("WATCHKEEPER_PUSHGATEWAY", ""),
        }
