# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Thanos blocks in object storage: list them, decide what to copy (pure, table-tested), copy
them server-side with boto3's transfer manager, meta.json last, and verify the copy.

A block is `PREFIX<ULID>/` holding `meta.json`, `index` and `chunks/NNNNNN` (plus optional
markers such as `deletion-mark.json`). Thanos uploads meta.json last, and readers (store
gateway, compactor) ignore a block without it; copies made here keep that contract: every other
file is copied and its size verified first, so a block without meta.json in the target is an
unfinished copy and the next run redoes it.

The boto3 client comes from module_utils/s3.py (the one place modules build it).
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import re
import time

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

META = "meta.json"
INDEX = "index"
CHUNKS = "chunks/"
DELETION_MARK = "deletion-mark.json"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
MIB = 1024 * 1024

#: Options of every module that copies blocks (compose with S3_SPEC and the module's own).
COPY_SPEC = dict(
    concurrency=dict(type="int", default=8),
    multipart_threshold=dict(type="int", default=64 * MIB),
    multipart_chunksize=dict(type="int", default=64 * MIB),
    progress_interval=dict(type="float", default=10.0),
)
MAX_PROGRESS_SAMPLES = 120


class BucketFailure(ModuleFailure):
    """A failed S3 operation or a refused copy."""


# --------------------------------------------------------------------------- S3 calls


def error_code(exc):
    """The S3 error code of a botocore ClientError ('NoSuchBucket', '403', ...), else ''."""
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))


def reason(exc):
    """A short operator-facing reason for a botocore exception, and the field to fix."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.NoCredentialsError):
        return "no credentials", ("set wk_s3_access_key and wk_s3_secret_key ({env: NAME}"
                                  " references)")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return "cannot connect (%s)" % exc, "check wk_s3_endpoint and that the S3 service is up"
    code = error_code(exc)
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return "credentials refused (%s)" % code, "fix wk_s3_access_key / wk_s3_secret_key"
    if code in ("NoSuchBucket", "404"):
        return "no such bucket", "fix the bucket name (wk_s3_bucket_blocks / wk_s3_bucket_backups)"
    if code in ("AccessDenied", "403"):
        return "access denied", "grant the S3 user this operation on the bucket"
    return "%s: %s" % (type(exc).__name__, exc), ""


def call(what, func, **kwargs):
    """One S3 API call; an error becomes a BucketFailure naming the call and the fix. (botocore
    retries throttling and 5xx itself: the client has standard retries.)"""
    from botocore import exceptions as bx

    try:
        return func(**kwargs)
    except (bx.BotoCoreError, bx.ClientError) as exc:
        said, hint = reason(exc)
        raise BucketFailure("%s: %s" % (what, said), hint) from exc


def versioning(client, bucket):
    """The bucket's versioning status: 'Enabled', 'Suspended' or 'Off' (never enabled)."""
    answer = call("GET versioning of bucket %s" % bucket, client.get_bucket_versioning,
                  Bucket=bucket)
    return answer.get("Status") or "Off"


def list_blocks(client, bucket, prefix=""):
    """{ulid: {relative path: size}} of every block directly under `prefix` (one listing).
    Keys that are not inside a ULID directory (debug/, other prefixes) are ignored."""
    from botocore import exceptions as bx

    blocks = {}
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                ulid, _, rel = item["Key"][len(prefix):].partition("/")
                if rel and ULID.match(ulid):
                    blocks.setdefault(ulid, {})[rel] = int(item["Size"])
    except (bx.BotoCoreError, bx.ClientError) as exc:
        said, hint = reason(exc)
        raise BucketFailure("list s3://%s/%s: %s" % (bucket, prefix, said), hint) from exc
    return blocks


def read_meta(client, bucket, prefix, ulid):
    """The block's meta.json as a dict."""
    key = "%s%s/%s" % (prefix, ulid, META)
    body = call("GET s3://%s/%s" % (bucket, key), client.get_object, Bucket=bucket, Key=key)
    try:
        return json.loads(body["Body"].read())
    except ValueError as exc:
        raise BucketFailure("s3://%s/%s is not JSON: %s" % (bucket, key, exc),
                            "the block's meta.json is damaged") from exc


# --------------------------------------------------------------------------- pure logic


def missing_parts(files):
    """What a complete block lacks: meta.json, index, at least one chunks/ file."""
    missing = [name for name in (META, INDEX) if name not in files]
    if not any(rel.startswith(CHUNKS) for rel in files):
        missing.append(CHUNKS)
    return missing


def data_files(files):
    """The files of a block to copy, meta.json excluded (it goes last, on its own)."""
    return sorted(rel for rel in files if rel != META)


def size_differences(source, target):
    """['chunks/000001: 123 bytes in the source, 100 in the copy', ...] for every source file
    the target lacks or holds with another size (extra target files are ignored)."""
    found = []
    for rel in sorted(source):
        if rel not in target:
            found.append("%s: missing in the copy" % rel)
        elif target[rel] != source[rel]:
            found.append("%s: %d bytes in the source, %d in the copy"
                         % (rel, source[rel], target[rel]))
    return found


def block_bytes(files):
    return sum(files.values())


def plan(source, target, repair=False, include=None):
    """What to do with each source block, given both listings ({ulid: {path: size}}).

    Returns {ulid: (action, reason)} with action one of:
      copy     new, an unfinished copy (no meta.json) or, with `repair`, a copy that differs;
      skip     the copy is complete and every file has the source's size;
      mismatch the copy is complete (has meta.json) but differs: an integrity failure;
      pending  the source has no meta.json yet (Thanos is still uploading it);
      broken   the source has meta.json but lacks index or chunks/;
      marked   the source carries a deletion mark (the compactor replaced it).
    `include`, when given, is the set of ULIDs to consider (others are left out).
    """
    decided = {}
    for ulid in sorted(source):
        if include is not None and ulid not in include:
            continue
        files = source[ulid]
        if META not in files:
            decided[ulid] = ("pending", "no meta.json in the source yet (upload in progress)")
            continue
        lacking = missing_parts(files)
        if lacking:
            decided[ulid] = ("broken", "the source block lacks %s" % ", ".join(lacking))
            continue
        if DELETION_MARK in files:
            decided[ulid] = ("marked", "marked for deletion in the source")
            continue
        copy = target.get(ulid)
        if not copy:
            decided[ulid] = ("copy", "new")
        elif META not in copy:
            decided[ulid] = ("copy", "unfinished copy (no meta.json): redone")
        else:
            differences = size_differences(files, copy)
            if not differences:
                decided[ulid] = ("skip", "present with equal sizes")
            elif repair:
                decided[ulid] = ("copy", "repaired: " + "; ".join(differences))
            else:
                decided[ulid] = ("mismatch", "; ".join(differences))
    return decided


def overlaps(meta, start_ms=None, end_ms=None):
    """Does the block's [minTime, maxTime) overlap [start_ms, end_ms]? (None: unbounded.)"""
    if start_ms is not None and int(meta["maxTime"]) <= start_ms:
        return False
    return end_ms is None or int(meta["minTime"]) <= end_ms


def human_bytes(value):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d B" % value


def summarize(actions, source, verb):
    """'copy 2 block(s) (1.2 MiB): A (new), B (unfinished copy ...)'."""
    chosen = [u for u, (a, _) in sorted(actions.items()) if a == "copy"]
    total = sum(block_bytes(source[u]) for u in chosen)
    detail = ", ".join("%s (%s)" % (u, actions[u][1]) for u in chosen)
    return "%s %d block(s) (%s)%s" % (verb, len(chosen), human_bytes(total),
                                      ": " + detail if detail else "")


def diff_of(actions, source, bucket, prefix):
    """Ansible diff payload: the blocks the target would gain (or have redone)."""
    before, after = {}, {}
    for ulid, (action, why) in sorted(actions.items()):
        if action != "copy":
            continue
        where = "s3://%s/%s%s/" % (bucket, prefix, ulid)
        before[where] = "absent" if why == "new" else why
        after[where] = "complete: %d files, %d bytes" % (len(source[ulid]),
                                                        block_bytes(source[ulid]))
    return {"before": before, "after": after, "after_header": "s3://%s/%s" % (bucket, prefix)}


# --------------------------------------------------------------------------- copying


class Progress(object):
    """Bytes and blocks done, sampled every `interval` seconds (bounded list)."""

    def __init__(self, blocks_total, bytes_total, interval):
        self.started = time.monotonic()
        self.blocks_total, self.bytes_total = blocks_total, bytes_total
        self.blocks_done, self.bytes_done = 0, 0
        self.interval = interval
        self.samples = []
        self._last = 0.0

    def add_bytes(self, count):
        self.bytes_done += count
        self.maybe_sample()

    def block_done(self):
        self.blocks_done += 1
        self.maybe_sample(force=self.blocks_done == self.blocks_total)

    def maybe_sample(self, force=False):
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        seconds = now - self.started
        if len(self.samples) >= MAX_PROGRESS_SAMPLES:
            del self.samples[1]  # keep the first and the latest ones
        self.samples.append({
            "seconds": round(seconds, 1), "blocks_done": self.blocks_done,
            "blocks_total": self.blocks_total, "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "mib_per_second": round(self.bytes_done / MIB / seconds, 2) if seconds > 0 else 0.0})


def transfer_manager(client, params):
    """boto3's transfer manager: parallel copies, multipart copy (UploadPartCopy) above the
    threshold. The classic (Python) client: the CRT one does not do server-side copy here."""
    from boto3.s3.transfer import TransferConfig, create_transfer_manager

    config = TransferConfig(multipart_threshold=params["multipart_threshold"],
                            multipart_chunksize=params["multipart_chunksize"],
                            max_concurrency=params["concurrency"],
                            preferred_transfer_client="classic")
    return create_transfer_manager(client, config)


def _subscriber(progress):
    from s3transfer.subscribers import BaseSubscriber

    class _Counter(BaseSubscriber):
        def on_progress(self, future, bytes_transferred, **kwargs):
            progress.add_bytes(bytes_transferred)

    return _Counter()


def _copy_files(manager, source, target, ulid, rels, progress):
    (sbucket, sprefix), (tbucket, tprefix) = source, target
    futures = []
    for rel in rels:
        futures.append((rel, manager.copy(
            {"Bucket": sbucket, "Key": "%s%s/%s" % (sprefix, ulid, rel)}, tbucket,
            "%s%s/%s" % (tprefix, ulid, rel), subscribers=[_subscriber(progress)])))
    failed = []
    for rel, future in futures:  # wait for all, then report every failure
        try:
            future.result()
        except Exception as exc:  # botocore errors and s3transfer's own
            failed.append((rel, exc))
    if failed:
        rel, exc = failed[0]
        said, hint = reason(exc)
        raise BucketFailure("copy s3://%s/%s%s/%s to s3://%s/%s%s/: %s%s" % (
            sbucket, sprefix, ulid, rel, tbucket, tprefix, ulid, said,
            " (+%d more file(s) failed)" % (len(failed) - 1) if len(failed) > 1 else ""),
            hint or "run again: the block has no meta.json in the target, so it is redone")


def copy_block(client, manager, source, target, ulid, files, progress, refresh_meta=False):
    """Copy one block server-side: every file but meta.json, verify their sizes in the target,
    then meta.json, then verify it. `source` / `target` are (bucket, prefix). With
    `refresh_meta` the target's meta.json is deleted first, so a copy interrupted while it
    replaces a complete block leaves an unfinished (ignored, redone) block, never a mixed one.
    Returns the target's listing of the block."""
    (tbucket, tprefix) = target
    if refresh_meta:
        key = "%s%s/%s" % (tprefix, ulid, META)
        call("DELETE s3://%s/%s" % (tbucket, key), client.delete_object, Bucket=tbucket, Key=key)
    _copy_files(manager, source, target, ulid, data_files(files), progress)
    copied = _listing(client, tbucket, "%s%s/" % (tprefix, ulid))
    wrong = size_differences({r: s for r, s in files.items() if r != META}, copied)
    if wrong:
        raise BucketFailure(
            "copy of block %s to s3://%s/%s is not equal to the source: %s"
            % (ulid, tbucket, tprefix, "; ".join(wrong)),
            "meta.json was not copied, so the block counts as not backed up; run again",
            block=ulid, differences=wrong)
    _copy_files(manager, source, target, ulid, [META], progress)
    copied = _listing(client, tbucket, "%s%s/" % (tprefix, ulid))
    wrong = size_differences(files, copied)
    if wrong:
        raise BucketFailure("block %s in s3://%s/%s differs from the source after the copy: %s"
                            % (ulid, tbucket, tprefix, "; ".join(wrong)), "run again",
                            block=ulid, differences=wrong)
    progress.block_done()
    return copied


def _listing(client, bucket, prefix):
    """{path relative to prefix: size} of every object under prefix."""
    from botocore import exceptions as bx

    found = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix):]] = int(item["Size"])
    except (bx.BotoCoreError, bx.ClientError) as exc:
        said, hint = reason(exc)
        raise BucketFailure("list s3://%s/%s: %s" % (bucket, prefix, said), hint) from exc
    return found


def copy_planned(client, params, actions, source_blocks, source, target):
    """Copy every block planned 'copy', in ULID (time) order. Returns (copied ulids, bytes,
    progress samples, seconds). Stops at the first failure: blocks copied before it are
    complete; the failed one has no meta.json in the target."""
    chosen = [u for u, (a, _) in sorted(actions.items()) if a == "copy"]
    total = sum(block_bytes(source_blocks[u]) for u in chosen)
    progress = Progress(len(chosen), total, params["progress_interval"])
    copied = []
    manager = transfer_manager(client, params)
    try:
        for ulid in chosen:
            try:
                copy_block(client, manager, source, target, ulid, source_blocks[ulid], progress,
                           refresh_meta=actions[ulid][1] != "new")
            except BucketFailure as exc:
                exc.details.update(copied=copied, progress=progress.samples,
                                   bytes_copied=sum(block_bytes(source_blocks[u])
                                                    for u in copied))
                raise
            copied.append(ulid)
    finally:
        manager.shutdown()
    progress.maybe_sample(force=True)
    seconds = time.monotonic() - progress.started
    return copied, sum(block_bytes(source_blocks[u]) for u in copied), progress.samples, seconds
