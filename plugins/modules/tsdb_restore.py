#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: tsdb_restore
short_description: Download a TSDB backup from S3 into a directory, verifying every sha256
description:
  - Picks the backup I(backup) under C(s3://bucket/PREFIX/CLUSTER/) (default the newest complete
    one; a backup without C(manifest.json) is incomplete and refused).
  - Downloads every file the manifest lists with boto3's transfer manager (parallel, ranged
    parts) into a hidden directory beside I(target), checks each file's size and sha256 against
    the manifest, and only then moves it to I(target), which a Prometheus can use as its
    C(--storage.tsdb.path). A mismatch refuses, names the file(s) and leaves I(target) untouched.
  - I(target) must not exist or be empty; it is never overwritten.
  - Check mode names the backup, its blocks and time range and what would be written.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  s3_endpoint:
    description: S3 endpoint URL (empty for AWS).
    type: str
  s3_region:
    description: S3 region.
    type: str
    default: us-east-1
  s3_access_key:
    description: S3 access key.
    type: str
  s3_secret_key:
    description: S3 secret key.
    type: str
  bucket:
    description: Backup bucket.
    type: str
    required: true
  cluster_prefix:
    description: C(PREFIX/CLUSTER/) of the backups.
    type: str
    required: true
  backup:
    description: TIMESTAMP of the backup to restore (default the newest complete one).
    type: str
    default: ""
  target:
    description: Directory to restore into (absent or empty).
    type: path
    required: true
  concurrency:
    description: Parallel transfer requests.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Restore the newest backup
  watchkeeper.platform.tsdb_restore:
    bucket: watchkeeper-backups
    cluster_prefix: prometheus-tsdb/observability/
    target: /var/tmp/restore/prometheus
"""

RETURN = r"""
backup:
  description: s3://bucket/prefix restored.
  type: str
  returned: always
blocks:
  description: The backup's blocks (ulid, min_time, max_time).
  type: list
  returned: always
min_time:
  description: Oldest sample time of the backup (ms).
  type: int
  returned: always
max_time:
  description: Newest sample time of the backup (ms).
  type: int
  returned: always
"""

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import (
    BackupFailure,
    Progress,
    download_backup,
    list_backups,
    manifest_problems,
    newest_complete,
    read_manifest,
    s3_reason,
    transfer_config,
)

ARGUMENT_SPEC = dict(
    s3.S3_SPEC,
    bucket=dict(type="str", required=True),
    cluster_prefix=dict(type="str", required=True),
    backup=dict(type="str", default=""),
    target=dict(type="path", required=True),
    concurrency=dict(type="int", default=10),
)


def choose(client, params):
    """(name, prefix, manifest) of the backup to restore."""
    bucket, base = params["bucket"], params["cluster_prefix"]
    name = params["backup"] or newest_complete(client, bucket, base)
    if not name:
        known = [b["name"] for b in list_backups(client, bucket, base)]
        raise BackupFailure("no complete backup under s3://%s/%s (incomplete: %s)" % (
            bucket, base, ", ".join(known) or "none"), "run backup-tsdb first")
    prefix = base + name + "/"
    manifest = read_manifest(client, bucket, prefix)
    if manifest is None:
        raise BackupFailure("s3://%s/%s has no manifest: the backup is incomplete (its run"
                            " failed or was killed)" % (bucket, prefix),
                            "restore a complete one; omit -e backup for the newest")
    problems = manifest_problems(manifest)
    if problems:
        raise BackupFailure("s3://%s/%s%s cannot be used: %s" % (
            bucket, prefix, "manifest.json", "; ".join(problems)))
    return name, prefix, manifest


def restore(client, params, check_mode):
    target = params["target"]
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise BackupFailure("target %s exists and is not an empty directory" % target,
                            "restore into a new directory: -e target_dir=...")
    name, prefix, manifest = choose(client, params)
    where = "s3://%s/%s" % (params["bucket"], prefix)
    blocks = manifest.get("blocks") or []
    summary = {"backup": where, "blocks": blocks, "min_time": manifest.get("min_time"),
               "max_time": manifest.get("max_time"), "files": manifest["file_count"],
               "bytes": manifest["total_bytes"], "target": target}
    result = dict(summary, changed=True, diff={"before": {}, "after": {target: {
        "from": where, "blocks": [b["ulid"] for b in blocks], "files": manifest["file_count"],
        "bytes": manifest["total_bytes"]}}, "after_header": target})
    if check_mode:
        result["msg"] = "would restore %s (%d block(s), %d files, %.1f MB) into %s" % (
            where, len(blocks), manifest["file_count"], manifest["total_bytes"] / 1e6, target)
        return result
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    partial = os.path.join(parent, ".%s.wk-restore-%s" % (os.path.basename(target), name))
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    progress = Progress(manifest["total_bytes"])
    try:
        with progress:
            download_backup(client, params["bucket"], prefix, manifest, partial,
                            transfer_config(params["concurrency"]), progress)
    except BackupFailure as exc:
        shutil.rmtree(partial, ignore_errors=True)
        exc.message = "%s: %s" % (where, exc.message)
        raise
    except Exception:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if os.path.isdir(target):
        os.rmdir(target)  # empty, checked above
    os.rename(partial, target)
    seconds = time.monotonic() - started
    result.update(seconds=round(seconds, 1), progress=progress.samples,
                  checks=[{"name": "checksums", "status": "ok",
                           "evidence": "%d files match the manifest's sha256 and size"
                                       % manifest["file_count"]}],
                  msg="restored %s (%d block(s), %d files, %.1f MB, every sha256 verified) into"
                      " %s in %.1f s" % (where, len(blocks), manifest["file_count"],
                                         manifest["total_bytes"] / 1e6, target, seconds))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = restore(s3.connect(params), params, module.check_mode)
    except BackupFailure as exc:
        module.fail_json(**exc.result())
    except Exception as exc:  # botocore / s3transfer: translate at the edge
        reason, hint = s3_reason(exc)
        module.fail_json(msg="restore from s3://%s/%s: %s%s" % (
            params["bucket"], params["cluster_prefix"], reason, " (%s)" % hint if hint else ""))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
