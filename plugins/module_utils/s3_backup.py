# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Directory backups in S3 with a manifest written last: the Prometheus TSDB backup and restore
(backup-tsdb, restore-tsdb) and the benchmark share this code.

Layout: ``s3://BUCKET/PREFIX/CLUSTER/TIMESTAMP/`` holds the snapshot's files under their relative
paths and ``manifest.json``. A backup is **complete only when its manifest exists**, and the
manifest is put only after every file was uploaded and the listing proved every key and size:
a run killed half-way leaves a prefix without a manifest, which restore never picks and which
the next run's retention deletes.

Pure logic (manifest, listing verification, retention selection) has no I/O and is
table-tested; the transfer functions take a boto3 client (built in module_utils/s3.py for the
modules, runbooks/clients.py for the runbooks' Python side).
"""

from __future__ import absolute_import, annotations, division, print_function

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from datetime import UTC, datetime

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

MANIFEST = "manifest.json"
FORMAT = 1
#: TIMESTAMP component of a backup prefix (UTC, sorts as it reads).
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TIMESTAMP = re.compile(r"^\d{8}T\d{6}Z$")
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
#: Transfer defaults: 8 MiB parts (S3's and awscli's default), 10 parallel requests. Memory stays
#: bounded: parts of a file on disk are read when sent, never queued in memory.
CHUNK_SIZE = 8 * 1024 * 1024
CONCURRENCY = 10
MAX_PROGRESS_SAMPLES = 60


class BackupFailure(ModuleFailure):
    """A failed backup or restore operation."""


# --------------------------------------------------------------------------- pure logic


def backup_prefix(prefix, cluster, timestamp):
    """``PREFIX/CLUSTER/TIMESTAMP/`` (no leading slash; an empty PREFIX is allowed)."""
    parts = [p.strip("/") for p in (prefix, cluster, timestamp) if p and p.strip("/")]
    return "/".join(parts) + "/"


def timestamp_of(when):
    """The TIMESTAMP component for a datetime (UTC)."""
    return when.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(name):
    """The UTC datetime of a TIMESTAMP component, or None when `name` is not one."""
    if not _TIMESTAMP.match(name or ""):
        return None
    try:
        return datetime.strptime(name, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def is_block_dir(name):
    """Is this top-level directory name a TSDB block (a ULID)?"""
    return bool(_ULID.match(name))


def blocks_from_metas(metas):
    """[{ulid, min_time, max_time, samples, series}] from {dir name: meta.json dict}, sorted by
    min_time. A meta.json whose ulid differs from its directory is an error (a copied block
    that was not renamed would restore as a duplicate)."""
    blocks = []
    for name, meta in metas.items():
        if meta.get("ulid") != name:
            raise BackupFailure("block %s: meta.json says ulid %r" % (name, meta.get("ulid")),
                                "the snapshot is not a set of intact TSDB blocks")
        stats = meta.get("stats") or {}
        blocks.append({"ulid": name, "min_time": int(meta["minTime"]),
                       "max_time": int(meta["maxTime"]),
                       "samples": int(stats.get("numSamples") or 0),
                       "series": int(stats.get("numSeries") or 0)})
    return sorted(blocks, key=lambda b: (b["min_time"], b["ulid"]))


def build_manifest(cluster, timestamp, files, blocks, source):
    """The manifest of one backup. `files`: [{path, size, sha256}]; `blocks`: as from
    blocks_from_metas; `source`: where it came from (Prometheus URL, version, snapshot)."""
    files = sorted(files, key=lambda f: f["path"])
    return {
        "format": FORMAT,
        "kind": "prometheus-tsdb",
        "cluster": cluster,
        "timestamp": timestamp,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": dict(source),
        "files": files,
        "file_count": len(files),
        "total_bytes": sum(f["size"] for f in files),
        "blocks": blocks,
        "min_time": min((b["min_time"] for b in blocks), default=None),
        "max_time": max((b["max_time"] for b in blocks), default=None),
    }


def manifest_problems(manifest):
    """Why `manifest` cannot drive a restore ([] when it can)."""
    if not isinstance(manifest, dict):
        return ["the manifest is not a JSON object"]
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append("manifest format %r, this watchkeeper reads %d"
                        % (manifest.get("format"), FORMAT))
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return [*problems, "the manifest lists no files"]
    for item in files:
        path = item.get("path", "") if isinstance(item, dict) else ""
        if (not path or path.startswith("/") or ".." in path.split("/")
                or path == MANIFEST):
            problems.append("unsafe or empty file path %r" % path)
        elif not isinstance(item.get("size"), int) or not re.match(
                r"^[0-9a-f]{64}$", str(item.get("sha256", ""))):
            problems.append("%s: size or sha256 missing" % path)
    return problems


def listing_problems(expected, listed):
    """Compare {key: size} that should be in the bucket with {key: size} that is: missing keys
    and size mismatches, sorted."""
    problems = []
    for key in sorted(expected):
        if key not in listed:
            problems.append("%s: missing" % key)
        elif listed[key] != expected[key]:
            problems.append("%s: %d bytes in the bucket, %d on disk"
                            % (key, listed[key], expected[key]))
    return problems


def _periods(when):
    iso = when.isocalendar()
    return {"daily": when.strftime("%Y-%m-%d"), "weekly": "%04d-W%02d" % (iso[0], iso[1]),
            "monthly": when.strftime("%Y-%m")}


def select_retention(backups, run_timestamp, keep_daily, keep_weekly, keep_monthly):
    """Decide, for each backup of one cluster, keep or delete, with the reason.

    `backups`: [{name: TIMESTAMP, complete: bool}]. Complete backups: for each of the newest
    `keep_daily` days (`keep_weekly` ISO weeks, `keep_monthly` months) that has one, the newest
    backup of that period is kept; the newest complete backup is always kept. Incomplete
    backups (no manifest) older than `run_timestamp` are leftovers of a failed or killed run
    and are deleted; one that is not older (this run's own, or a run that started later) is
    kept. Names that are not timestamps are never touched. Returns newest first."""
    rules = (("daily", keep_daily), ("weekly", keep_weekly), ("monthly", keep_monthly))
    dated = []
    for item in backups:
        when = parse_timestamp(item["name"])
        if when is not None:
            dated.append((when, item))
    dated.sort(key=lambda pair: pair[0], reverse=True)
    complete = [(when, item) for when, item in dated if item["complete"]]
    reasons = {}
    if complete:
        reasons[complete[0][1]["name"]] = ["newest complete backup"]
    for rule, count in rules:
        seen = []
        for when, item in complete:
            if len(seen) >= count:
                break
            period = _periods(when)[rule]
            if period not in seen:
                seen.append(period)
                reasons.setdefault(item["name"], []).append("%s %s" % (rule, period))
    decisions = []
    for _when, item in dated:
        name = item["name"]
        if not item["complete"]:
            if name < run_timestamp:
                decision = ("delete", "incomplete (no manifest), older than this run")
            else:
                decision = ("keep", "incomplete, not older than this run (in progress)")
        elif name in reasons:
            decision = ("keep", ", ".join(reasons[name]))
        else:
            decision = ("delete", "beyond keep_daily=%d, keep_weekly=%d, keep_monthly=%d"
                        % (keep_daily, keep_weekly, keep_monthly))
        decisions.append({"backup": name, "complete": bool(item["complete"]),
                          "action": decision[0], "reason": decision[1]})
    return decisions


# --------------------------------------------------------------------------- local files


def scan_tree(root):
    """[{path, size}] of every regular file under `root` (relative POSIX paths), sorted, and
    {block dir: meta.json dict}. A symlink is refused: the backup must hold the data itself."""
    files, metas = [], {}
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full) or not os.path.isfile(full):
                raise BackupFailure("%s is not a regular file" % full,
                                    "a TSDB snapshot holds only regular files (hard links)")
            files.append({"path": rel, "size": os.path.getsize(full)})
            parts = rel.split("/")
            if len(parts) == 2 and parts[1] == "meta.json" and is_block_dir(parts[0]):
                with open(full, "rb") as handle:
                    metas[parts[0]] = json.load(handle)
    files.sort(key=lambda f: f["path"])
    return files, metas


def sha256_file(path, bufsize=1024 * 1024):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(bufsize)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=False)


# --------------------------------------------------------------------------- progress


class Progress(object):
    """Bytes transferred so far, updated from the transfer threads; samples for the journal
    and an optional callback for live output (at most every `interval` seconds)."""

    def __init__(self, total_bytes, callback=None, interval=5.0):
        self.total = total_bytes
        self.done = 0
        self.files_done = 0
        self.started = time.monotonic()
        self.samples = []
        self._lock = threading.Lock()
        self._callback = callback
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None

    def add(self, count):
        with self._lock:
            self.done += count

    def file_done(self):
        with self._lock:
            self.files_done += 1

    def sample(self):
        with self._lock:
            seconds = time.monotonic() - self.started
            return {"seconds": round(seconds, 1), "bytes_done": self.done,
                    "bytes_total": self.total, "files_done": self.files_done,
                    "mb_per_s": round(self.done / 1e6 / seconds, 1) if seconds > 0 else 0.0}

    def record(self):
        sample = self.sample()
        if len(self.samples) >= MAX_PROGRESS_SAMPLES:
            del self.samples[1]  # keep the first sample and the latest ones
        self.samples.append(sample)
        if self._callback is not None:
            # a faulty progress handler never breaks a run
            with contextlib.suppress(Exception):
                self._callback(sample)

    def __enter__(self):
        def loop():
            while not self._stop.wait(self._interval):
                self.record()

        self._thread = threading.Thread(target=loop, name="backup-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.record()
        return False


# --------------------------------------------------------------------------- S3


def transfer_config(concurrency=CONCURRENCY, chunk_size=CHUNK_SIZE):
    """boto3's transfer manager settings: multipart above one part, parallel parts and files.
    The IO queue (downloads) is capped so memory stays bounded whatever the backup's size."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=chunk_size, multipart_chunksize=chunk_size,
                          max_concurrency=concurrency, use_threads=True, max_io_queue=100)


def s3_reason(exc):
    """A short operator-facing reason for a botocore / s3transfer exception, with the hint."""
    from botocore import exceptions as bx

    cause = exc
    # s3transfer wraps the client's error in its own for some failures.
    while getattr(cause, "__cause__", None) is not None and not isinstance(
            cause, (bx.ClientError, bx.EndpointConnectionError)):
        cause = cause.__cause__
    if isinstance(cause, bx.ClientError):
        error = cause.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = (cause.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code == "404" and "Bucket" in str(cause)):
            return "bucket does not exist (%s)" % code, "check wk_s3_bucket_backups"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
            return ("S3 refused the credentials or the permission (%s)" % code,
                    "check wk_s3_access_key / wk_s3_secret_key and the bucket policy")
        return "S3 error %s (HTTP %s): %s" % (code, status, error.get("Message", "")), ""
    if isinstance(cause, (bx.EndpointConnectionError, bx.ConnectionClosedError,
                          bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        return ("S3 endpoint unreachable (%s)" % type(cause).__name__,
                "check wk_s3_endpoint and that S3 is up; run again: the next run redoes the"
                " backup and deletes this one's leftovers")
    if isinstance(cause, bx.NoCredentialsError):
        return "no S3 credentials", "set wk_s3_access_key / wk_s3_secret_key"
    return "%s: %s" % (type(cause).__name__, cause), ""


def list_objects(client, bucket, prefix):
    """{key: size} of every object under `prefix`."""
    found = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = int(item["Size"])
    return found


def list_backups(client, bucket, cluster_prefix):
    """[{name, complete, objects, bytes}] of the backups under ``PREFIX/CLUSTER/``."""
    groups = {}
    for key, size in list_objects(client, bucket, cluster_prefix).items():
        rest = key[len(cluster_prefix):]
        if "/" not in rest:
            continue
        name, path = rest.split("/", 1)
        group = groups.setdefault(name, {"name": name, "complete": False, "objects": 0,
                                         "bytes": 0})
        group["objects"] += 1
        group["bytes"] += size
        if path == MANIFEST:
            group["complete"] = True
    # Parts of a killed multipart upload are invisible to the listing but use space.
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=cluster_prefix):
        for upload in page.get("Uploads", []):
            rest = upload["Key"][len(cluster_prefix):]
            if "/" in rest:
                groups.setdefault(rest.split("/", 1)[0], {
                    "name": rest.split("/", 1)[0], "complete": False, "objects": 0,
                    "bytes": 0})
    return sorted(groups.values(), key=lambda g: g["name"])


def read_manifest(client, bucket, prefix):
    """The manifest of the backup at `prefix`, or None when it has none (incomplete)."""
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read()
    except ClientError as exc:
        if (exc.response.get("Error") or {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return json.loads(body)


def delete_prefix(client, bucket, prefix):
    """Delete every object under `prefix` (the current versions: on a versioned bucket the
    noncurrent versions stay until the bucket's lifecycle rule expires them) and abort its
    unfinished multipart uploads. Returns the number of objects deleted."""
    keys = sorted(list_objects(client, bucket, prefix))
    # The manifest first: from then on the backup no longer looks complete.
    keys.sort(key=lambda k: not k.endswith("/" + MANIFEST))
    deleted = 0
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        answer = client.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            raise BackupFailure("deleting %s: %d object(s) refused, first %s: %s" % (
                prefix, len(errors), errors[0].get("Key"), errors[0].get("Message")))
        deleted += len(batch)
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    return deleted


def upload_tree(client, bucket, prefix, root, files, config=None, progress=None):
    """Upload `files` ([{path, size}] under `root`) to ``prefix + path`` with boto3's transfer
    manager (multipart, parallel) while hashing them; returns [{path, size, sha256}].

    The sha256 is computed from the same immutable files (a snapshot's hard links) in a thread
    beside the transfers, so hashing adds no wall time while the network is the bottleneck."""
    from concurrent.futures import ThreadPoolExecutor

    from boto3.s3.transfer import ProgressCallbackInvoker, create_transfer_manager

    config = config or transfer_config()
    subscribers = [ProgressCallbackInvoker(progress.add)] if progress is not None else []
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    try:
        hashes = [hasher.submit(sha256_file, os.path.join(root, f["path"])) for f in files]
        with create_transfer_manager(client, config) as manager:
            futures = [manager.upload(os.path.join(root, f["path"]), bucket, prefix + f["path"],
                                      subscribers=subscribers) for f in files]
            for future in futures:
                future.result()  # the first failure cancels the rest (manager shutdown)
                if progress is not None:
                    progress.file_done()
        return [dict(f, sha256=h.result()) for f, h in zip(files, hashes, strict=False)]
    finally:
        hasher.shutdown(wait=True, cancel_futures=True)


def put_manifest(client, bucket, prefix, manifest):
    """Put the manifest (the backup's last object) and read its size back."""
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    client.put_object(Bucket=bucket, Key=prefix + MANIFEST, Body=body,
                      ContentType="application/json")
    head = client.head_object(Bucket=bucket, Key=prefix + MANIFEST)
    if int(head["ContentLength"]) != len(body):
        raise BackupFailure("manifest %s%s: %d bytes in the bucket, %d sent"
                            % (prefix, MANIFEST, head["ContentLength"], len(body)))
    return len(body)


def back_up(client, bucket, prefix, root, cluster, timestamp, source, config=None,
            progress_callback=None, progress_interval=5.0):
    """Upload the snapshot directory `root` as the backup at `prefix`, verify the listing, then
    put the manifest. Raises BackupFailure (no manifest written) on any failure. Returns
    (manifest, progress samples, seconds)."""
    files, metas = scan_tree(root)
    if not files:
        raise BackupFailure("%s holds no file" % root, "the snapshot is empty")
    blocks = blocks_from_metas(metas)
    if read_manifest(client, bucket, prefix) is not None:
        raise BackupFailure("s3://%s/%s already holds a complete backup" % (bucket, prefix),
                            "every run writes a backup of its own timestamp; run again")
    # Anything already there is a leftover of a killed run with this very timestamp.
    delete_prefix(client, bucket, prefix)
    progress = Progress(sum(f["size"] for f in files), progress_callback, progress_interval)
    started = time.monotonic()
    with progress:
        hashed = upload_tree(client, bucket, prefix, root, files, config, progress)
    expected = dict((prefix + f["path"], f["size"]) for f in files)
    problems = listing_problems(expected, list_objects(client, bucket, prefix))
    if problems:
        raise BackupFailure("upload not verified, %d problem(s): %s" % (
            len(problems), "; ".join(problems[:5])), "no manifest was written; run again",
            progress=progress.samples)
    manifest = build_manifest(cluster, timestamp, hashed, blocks, source)
    put_manifest(client, bucket, prefix, manifest)
    return manifest, progress.samples, time.monotonic() - started


def newest_complete(client, bucket, cluster_prefix):
    """The name of the newest complete backup under ``PREFIX/CLUSTER/``, or None."""
    complete = [b["name"] for b in list_backups(client, bucket, cluster_prefix)
                if b["complete"] and parse_timestamp(b["name"])]
    return max(complete) if complete else None


def download_backup(client, bucket, prefix, manifest, target, config=None, progress=None):
    """Download every file the manifest lists into `target` and verify its sha256 and size.
    Raises BackupFailure naming the first file that does not match (after all were
    checked, so every bad file is listed)."""
    from boto3.s3.transfer import ProgressCallbackInvoker, create_transfer_manager

    config = config or transfer_config()
    subscribers = [ProgressCallbackInvoker(progress.add)] if progress is not None else []
    files = manifest["files"]
    for item in files:
        os.makedirs(os.path.dirname(os.path.join(target, item["path"])), exist_ok=True)
    bad = []
    with create_transfer_manager(client, config) as manager:
        futures = [manager.download(bucket, prefix + f["path"], os.path.join(target, f["path"]),
                                    subscribers=subscribers) for f in files]
        for item, future in zip(files, futures, strict=False):
            future.result()
            path = os.path.join(target, item["path"])
            size = os.path.getsize(path)
            digest = sha256_file(path)
            if size != item["size"] or digest != item["sha256"]:
                bad.append("%s (sha256 %s, %d bytes; manifest: %s, %d bytes)" % (
                    item["path"], digest[:12], size, item["sha256"][:12], item["size"]))
            if progress is not None:
                progress.file_done()
    if bad:
        raise BackupFailure("checksum mismatch in %d file(s): %s" % (len(bad), "; ".join(bad)),
                            "the backup is corrupt; nothing was restored: restore an older"
                            " backup with -e backup=TIMESTAMP", corrupt=[b.split(" ")[0]
                                                                         for b in bad])
