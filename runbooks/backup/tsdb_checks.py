"""Preconditions shared by backup-tsdb and restore-tsdb: checked in `validate()`, before anything
changes, each failure naming the inventory field or parameter to fix.

The Prometheus predicates are the ones the modules apply (plugins/module_utils/prom_tsdb.py),
so the runbook and the module refuse for the same reasons; the S3 client comes from
runbooks.clients (the one place SDK clients are built).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runbooks import platform
from runbooks.clients import s3_client
from runbooks.errors import PreconditionFailed, SecretError
from runbooks.inventory import ClusterConfig

#: Per-request timeout of precondition reads: a wrong address must not stall validation.
PROBE_TIMEOUT = 10.0


def cluster_name(cluster: ClusterConfig) -> str:
    return cluster.cluster or cluster.name


def require_prometheus_server(cluster: ClusterConfig, inventory: str) -> dict[str, Any]:
    """The server's flags, after proving wk_prometheus_url is a full Prometheus server with the
    admin API on and its TSDB directory visible here."""
    prom = platform.prom_tsdb
    url = cluster.prometheus_url
    if url is None:
        if cluster.agent_url:
            raise PreconditionFailed(
                f"{cluster.name}: no wk_prometheus_url, only the agent at wk_agent_url"
                f" {cluster.agent_url}, which cannot be snapshot: {prom.AGENT_ADVICE}")
        raise PreconditionFailed(
            f"{cluster.name}: wk_prometheus_url is not set: add the Prometheus server to back up"
            f" to the cluster's host_vars in {inventory}")
    try:
        flags, _ = prom.server_info(url, timeout=PROBE_TIMEOUT)
    except prom.PrometheusFailure as exc:
        raise PreconditionFailed(
            f"{cluster.name}: cannot read wk_prometheus_url {url}: {exc.message}. Fix"
            f" wk_prometheus_url in {inventory} (the server's HTTP port, usually :9090) or start"
            " Prometheus; nothing was changed") from exc
    problem = prom.server_problem(flags)
    if problem:
        raise PreconditionFailed(
            f"{cluster.name}: wk_prometheus_url {url} cannot be backed up: {problem}")
    path = prom.tsdb_path(flags, cluster.prometheus_tsdb_path)
    problem = prom.path_problem(path)
    if problem:
        raise PreconditionFailed(
            f"{cluster.name}: wk_prometheus_tsdb_path: {problem} (the server reports"
            f" --storage.tsdb.path={flags.get('storage.tsdb.path')}; {inventory})")
    if not os.access(Path(path), os.W_OK):
        raise PreconditionFailed(
            f"{cluster.name}: wk_prometheus_tsdb_path {path} is not writable by this user, so"
            " the snapshot could not be deleted after its upload: run watchkeeper as the"
            " Prometheus user (or with its group)")
    return dict(flags)


def connect_s3(cluster: ClusterConfig, inventory: str) -> Any:
    """A client for the backup bucket, after proving the endpoint answers, the credentials work
    and wk_s3_bucket_backups exists. Raises PreconditionFailed naming the field to fix."""
    from botocore import exceptions as bx

    bucket = cluster.s3_bucket_backups
    if not bucket:
        raise PreconditionFailed(f"{cluster.name}: wk_s3_bucket_backups is not set: add the"
                                 f" backup bucket to {inventory}")
    for field in ("s3_access_key", "s3_secret_key"):
        ref = getattr(cluster, field)
        if ref is not None:
            try:
                ref.resolve()
            except SecretError as exc:
                raise PreconditionFailed(f"{cluster.name}: wk_{field}: {exc}") from exc
    if (cluster.s3_access_key is None) != (cluster.s3_secret_key is None):
        raise PreconditionFailed(f"{cluster.name}: set both wk_s3_access_key and"
                                 f" wk_s3_secret_key (or neither, for the default AWS chain)"
                                 f" in {inventory}")
    client = s3_client(cluster)
    endpoint = cluster.s3_endpoint or "the AWS default endpoint"
    try:
        client.head_bucket(Bucket=bucket)
    except bx.ClientError as exc:
        code = str((exc.response.get("Error") or {}).get("Code"))
        if code in ("404", "NoSuchBucket"):
            raise PreconditionFailed(
                f"{cluster.name}: bucket {bucket!r} (wk_s3_bucket_backups) does not exist at"
                f" {endpoint}: fix wk_s3_bucket_backups in {inventory} or create the bucket"
                " (with versioning)") from exc
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise PreconditionFailed(
                f"{cluster.name}: S3 at {endpoint} refused access to bucket {bucket!r} (HTTP"
                f" {code}): fix wk_s3_access_key / wk_s3_secret_key in {inventory} or grant"
                " them s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject") from exc
        raise PreconditionFailed(f"{cluster.name}: S3 head_bucket {bucket!r}: {exc}") from exc
    except bx.NoCredentialsError as exc:
        raise PreconditionFailed(
            f"{cluster.name}: no S3 credentials: set wk_s3_access_key and wk_s3_secret_key"
            f" (secret references) in {inventory}") from exc
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
            bx.ConnectionClosedError) as exc:
        raise PreconditionFailed(
            f"{cluster.name}: S3 endpoint {endpoint} (wk_s3_endpoint) is unreachable"
            f" ({type(exc).__name__}): fix wk_s3_endpoint in {inventory} or start S3; nothing"
            " was changed") from exc
    return client
