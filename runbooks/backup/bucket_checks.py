"""Preconditions shared by the Thanos bucket runbooks (backup-bucket, restore-bucket): checked
in `validate()`, before anything changes, each failure naming the inventory field to fix.

The client comes from runbooks.clients (the one place SDK clients are built).
"""

from __future__ import annotations

import re
from typing import Any

from runbooks.clients import s3_client
from runbooks.errors import PreconditionFailed, SecretError
from runbooks.inventory import ClusterConfig

#: S3 prefixes the runbooks write under: relative, ending in "/", no "..".
_PREFIX = re.compile(r"^([A-Za-z0-9!_.*'()-]+/)*$")


def prefix_problem(value: str, field: str) -> str | None:
    """Why `value` cannot be a block prefix, or None (empty = the bucket's root)."""
    if value and (not _PREFIX.match(value) or ".." in value.split("/")):
        return (f"{field} {value!r}: a relative S3 prefix ending in '/', e.g. thanos-blocks/"
                " (letters, digits, ! _ . * ' ( ) -)")
    return None


def observability(clusters: tuple[ClusterConfig, ...], runbook: str) -> list[ClusterConfig]:
    """The selected observability clusters (where the receivers' bucket is declared; the
    framework selects only those: the runbooks' applies_to)."""
    return [c for c in clusters if c.role == "observability"]


def require_buckets(cluster: ClusterConfig, inventory: str) -> None:
    for field in ("s3_bucket_blocks", "s3_bucket_backups"):
        if not getattr(cluster, field):
            raise PreconditionFailed(
                f"{cluster.name}: wk_{field} is not set: add it to the cluster's host_vars in"
                f" {inventory}")
    if cluster.s3_bucket_blocks == cluster.s3_bucket_backups:
        raise PreconditionFailed(
            f"{cluster.name}: wk_s3_bucket_backups is the blocks bucket itself"
            f" ({cluster.s3_bucket_blocks}): a backup in the bucket it protects is lost with"
            f" it; set wk_s3_bucket_backups to another bucket in {inventory}")


def connect(cluster: ClusterConfig, inventory: str) -> Any:
    """A boto3 client for the cluster's S3; the credentials must resolve."""
    try:
        return s3_client(cluster)
    except SecretError as exc:
        raise PreconditionFailed(
            f"{cluster.name}: the S3 credentials (wk_s3_access_key / wk_s3_secret_key in"
            f" {inventory}) cannot be read: {exc}") from exc


def versioning(client: Any, cluster: ClusterConfig, bucket: str, field: str,
               inventory: str) -> str:
    """The bucket's versioning status ('Enabled', 'Suspended', 'Off'), after proving that the
    endpoint answers, the credentials work and the bucket exists. Raises PreconditionFailed
    naming the field to fix."""
    from botocore import exceptions as bx

    endpoint = cluster.s3_endpoint or "the AWS default endpoint"
    where = f"{cluster.name}: bucket {bucket!r} (wk_{field}) at wk_s3_endpoint {endpoint}"
    try:
        answer = client.get_bucket_versioning(Bucket=bucket)
    except bx.NoCredentialsError as exc:
        raise PreconditionFailed(
            f"{where}: no S3 credentials: set wk_s3_access_key and wk_s3_secret_key (as"
            f" {{env: NAME}} references) in {inventory}, or give the process AWS credentials;"
            " nothing was changed") from exc
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise PreconditionFailed(
            f"{where}: cannot connect ({exc}): fix wk_s3_endpoint in {inventory} or start the"
            " S3 service; nothing was changed") from exc
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            raise PreconditionFailed(
                f"{where}: no such bucket: fix wk_{field} in {inventory} or create the bucket"
                " (with versioning); nothing was changed") from exc
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PreconditionFailed(
                f"{where}: the credentials were refused ({code}): fix wk_s3_access_key /"
                f" wk_s3_secret_key in {inventory} (or the values they refer to)") from exc
        if code in ("AccessDenied", "403"):
            raise PreconditionFailed(
                f"{where}: access denied: the S3 user needs s3:GetBucketVersioning,"
                " s3:ListBucket, s3:GetObject and s3:PutObject on it") from exc
        raise PreconditionFailed(f"{where}: {code or exc}") from exc
    except bx.BotoCoreError as exc:
        raise PreconditionFailed(f"{where}: {exc}: fix wk_s3_endpoint in {inventory}") from exc
    return str(answer.get("Status") or "Off")


def require_versioning(status: str, cluster: ClusterConfig, bucket: str, field: str) -> None:
    if status != "Enabled":
        raise PreconditionFailed(
            f"{cluster.name}: versioning of bucket {bucket!r} (wk_{field}) is {status}, not"
            " Enabled: a deleted or overwritten block would be gone for good. Enable it"
            f" (aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration"
            " Status=Enabled), or run with -e require_versioning=false to only warn")
