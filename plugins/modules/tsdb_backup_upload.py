#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: tsdb_backup_upload
short_description: Upload a TSDB snapshot to S3, verify it, write its manifest last
description:
  - Uploads every file of I(source) to C(s3://bucket/prefix/) with boto3's transfer manager
    (multipart, parallel parts and files), hashing each file (sha256) beside the transfer.
  - Verifies the upload by listing the prefix (every key present, every size equal), then puts
    C(manifest.json) (files, sizes, sha256, block ULIDs, min/max time from each block's
    meta.json, the source) as the backup's last object. A backup is complete only when its
    manifest exists; a failure or a kill before that leaves no manifest.
  - Deletes the local snapshot once the upload is verified (I(remove_source)); after a failed
    upload too when I(remove_on_failure) (the data is still in the TSDB; kept hard links would
    pin disk space and the next run takes a fresh snapshot).
  - Records progress samples (bytes, MB/s) while uploading.
  - Check mode lists what would be uploaded (the blocks of I(predict_from)) and uploads nothing.
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
  prefix:
    description: The backup's prefix, C(PREFIX/CLUSTER/TIMESTAMP/).
    type: str
    required: true
  cluster:
    description: Cluster name recorded in the manifest.
    type: str
    required: true
  timestamp:
    description: The backup's TIMESTAMP (recorded in the manifest).
    type: str
    required: true
  source:
    description: The snapshot directory (empty in check mode).
    type: str
    default: ""
  source_info:
    description: Where the snapshot came from (URL, version, snapshot name), for the manifest.
    type: dict
    default: {}
  predict_from:
    description: In check mode, the TSDB directory whose blocks the snapshot would hold.
    type: str
    default: ""
  remove_source:
    description: Delete I(source) once the upload is verified.
    type: bool
    default: true
  remove_on_failure:
    description: Delete I(source) after a failed upload too.
    type: bool
    default: true
  concurrency:
    description: Parallel transfer requests.
    type: int
    default: 10
  chunk_size_mb:
    description: Multipart part size in MiB (also the multipart threshold).
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Upload and verify the backup
  watchkeeper.platform.tsdb_backup_upload:
    bucket: watchkeeper-backups
    prefix: prometheus-tsdb/observability/20260101T000000Z/
    cluster: observability
    timestamp: 20260101T000000Z
    source: /prometheus/snapshots/20260101T000000Z-5f2e
"""

RETURN = r"""
backup:
  description: s3://bucket/prefix of the backup.
  type: str
  returned: always
files:
  description: Number of files uploaded (in check mode, that would be).
  type: int
  returned: always
bytes:
  description: Bytes uploaded.
  type: int
  returned: always
blocks:
  description: Block ULIDs with min/max time.
  type: list
  returned: always
progress:
  description: Samples taken while uploading (seconds, bytes_done, bytes_total, mb_per_s).
  type: list
  returned: when not in check mode
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import (
    MANIFEST,
    BackupFailure,
    back_up,
    is_block_dir,
    remove_tree,
    s3_reason,
    scan_tree,
    transfer_config,
)

ARGUMENT_SPEC = dict(
    s3.S3_SPEC,
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", required=True),
    cluster=dict(type="str", required=True),
    timestamp=dict(type="str", required=True),
    source=dict(type="str", default=""),
    source_info=dict(type="dict", default={}),
    predict_from=dict(type="str", default=""),
    remove_source=dict(type="bool", default=True),
    remove_on_failure=dict(type="bool", default=True),
    concurrency=dict(type="int", default=10),
    chunk_size_mb=dict(type="int", default=8),
)


def predict(params):
    """What a run would upload: the blocks the TSDB holds now (the snapshot adds the head)."""
    root = params["predict_from"]
    blocks, files, size = [], 0, 0
    for name in sorted(os.listdir(root)) if root and os.path.isdir(root) else []:
        if is_block_dir(name):
            found, _ = scan_tree(os.path.join(root, name))
            blocks.append(name)
            files += len(found)
            size += sum(f["size"] for f in found)
    where = "s3://%s/%s" % (params["bucket"], params["prefix"])
    return {"changed": True, "backup": where, "files": files, "bytes": size,
            "blocks": [{"ulid": b} for b in blocks],
            "diff": {"before": {}, "after": {where: {"blocks": blocks, "files": files,
                                                    "bytes": size, "then": MANIFEST}},
                     "after_header": where},
            "msg": "would upload %d block(s) (%d files, %.1f MB) and the head's block to %s,"
                   " then %s" % (len(blocks), files, size / 1e6, where, MANIFEST)}


def upload(params):
    source = params["source"]
    if not source or not os.path.isdir(source):
        raise BackupFailure("snapshot directory %r does not exist" % source)
    where = "s3://%s/%s" % (params["bucket"], params["prefix"])
    client = s3.connect(params)
    config = transfer_config(params["concurrency"], params["chunk_size_mb"] * 1024 * 1024)
    try:
        manifest, samples, seconds = back_up(
            client, params["bucket"], params["prefix"], source, params["cluster"],
            params["timestamp"], params["source_info"], config)
    except BackupFailure as exc:
        exc.message = "%s: %s" % (where, exc.message)
        raise
    except Exception as exc:  # botocore / s3transfer: translate at the edge
        reason, hint = s3_reason(exc)
        raise BackupFailure("uploading to %s failed: %s; no manifest was written"
                            % (where, reason), hint) from exc
    removed = False
    if params["remove_source"]:
        remove_tree(source)  # only now: the listing proved every file is in the bucket
        removed = True
    total = manifest["total_bytes"]
    rate = total / 1e6 / seconds if seconds > 0 else 0.0
    blocks = manifest["blocks"]
    return {"changed": True, "backup": where, "files": manifest["file_count"], "bytes": total,
            "blocks": blocks, "min_time": manifest["min_time"], "max_time": manifest["max_time"],
            "seconds": round(seconds, 1), "mb_per_s": round(rate, 1), "progress": samples,
            "source_removed": removed,
            "diff": {"before": {}, "after": {where: {
                "blocks": [b["ulid"] for b in blocks], "files": manifest["file_count"],
                "bytes": total}}, "after_header": where},
            "checks": [{"name": "upload verified", "status": "ok",
                        "evidence": "%d files, %d bytes listed under %s; %s written last"
                                    % (manifest["file_count"], total, where, MANIFEST)}],
            "msg": "backed up %d block(s), %d files, %.1f MB to %s in %.1f s (%.1f MB/s);"
                   " manifest written; local snapshot %s" % (
                       len(blocks), manifest["file_count"], total / 1e6, where, seconds, rate,
                       "deleted" if removed else "kept")}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = predict(params) if module.check_mode else upload(params)
    except BackupFailure as exc:
        if (not module.check_mode and params["remove_on_failure"] and params["source"]
                and os.path.isdir(params["source"])):
            remove_tree(params["source"])
            exc.hint = (exc.hint + "; " if exc.hint else "") + (
                "the local snapshot %s was deleted (its data is still in the TSDB)"
                % params["source"])
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
