#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: thanos_bucket_restore
short_description: Restore Thanos blocks from the backup bucket into a bucket or a scratch prefix
description:
  - Lists the complete block copies (with C(meta.json)) under the backup prefix, selects all of
    them or those whose C([minTime, maxTime)) overlaps I(min_time_ms) .. I(max_time_ms) (read
    from each block's C(meta.json)), and copies them server-side into I(target_bucket) under
    I(target_prefix), C(meta.json) last after every other file's size is verified.
  - A block already in the target with the backup's sizes is skipped. Any other block already
    in the target (an unfinished or a different copy) makes the task refuse before copying
    anything, naming the blocks, unless I(overwrite) is set.
  - Backup copies without C(meta.json) (an unfinished backup) are never restored; a backup copy
    lacking C(index) or C(chunks/) fails the task.
  - Check mode lists the blocks it would restore and copies nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.s3
options:
  source_bucket:
    description: The backup bucket.
    type: str
    required: true
  source_prefix:
    description: Prefix of the block copies in the backup bucket, ending in C(/).
    type: str
    default: thanos-blocks/
  target_bucket:
    description: Where the blocks go (the blocks bucket, or a scratch bucket).
    type: str
    required: true
  target_prefix:
    description: Prefix in the target bucket (empty for the bucket's root, where Thanos reads).
    type: str
    default: ""
  min_time_ms:
    description: Restore only blocks that end after this time (Unix milliseconds).
    type: int
  max_time_ms:
    description: Restore only blocks that start at or before this time (Unix milliseconds).
    type: int
  overwrite:
    description: Replace blocks already in the target that differ from the backup.
    type: bool
    default: false
  concurrency:
    description: Parallel copies (files, and parts of one large file).
    type: int
    default: 8
  multipart_threshold:
    description: Objects from this size (bytes) are copied in parts (UploadPartCopy).
    type: int
    default: 67108864
  multipart_chunksize:
    description: Part size (bytes) of a multipart copy.
    type: int
    default: 67108864
  progress_interval:
    description: Seconds between two progress samples.
    type: float
    default: 10
"""

EXAMPLES = r"""
- name: Restore one day of blocks into a scratch prefix
  watchkeeper.platform.thanos_bucket_restore:
    s3_endpoint: http://minio:9000
    source_bucket: watchkeeper-backups
    target_bucket: thanos-blocks
    target_prefix: restore-drill/
    min_time_ms: 1767225600000
    max_time_ms: 1767311999999
"""

RETURN = r"""
restored:
  description: ULIDs of the blocks copied into the target by this run.
  type: list
  returned: when not in check mode
selected:
  description: The blocks selected (complete in the backup, overlapping the time range) with minTime and maxTime.
  type: dict
  returned: always
skipped_blocks:
  description: Selected blocks already in the target with equal sizes.
  type: list
  returned: always
bytes_copied:
  description: Bytes copied.
  type: int
  returned: always
progress:
  description: Samples taken while copying.
  type: list
  returned: when not in check mode
checks:
  description: backup blocks, restored sizes (name, status, evidence, hint).
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3 import S3_SPEC, connect
from ansible_collections.watchkeeper.platform.plugins.module_utils.thanos_blocks import (
    COPY_SPEC,
    BucketFailure,
    copy_planned,
    diff_of,
    human_bytes,
    list_blocks,
    overlaps,
    plan,
    read_meta,
    size_differences,
    summarize,
)

ARGUMENT_SPEC = dict(
    S3_SPEC,
    source_bucket=dict(type="str", required=True),
    source_prefix=dict(type="str", default="thanos-blocks/"),
    target_bucket=dict(type="str", required=True),
    target_prefix=dict(type="str", default=""),
    min_time_ms=dict(type="int"),
    max_time_ms=dict(type="int"),
    overwrite=dict(type="bool", default=False),
    **COPY_SPEC
)


def restore(client, params, check_mode):
    source = (params["source_bucket"], params["source_prefix"])
    target = (params["target_bucket"], params["target_prefix"])
    if source == target:
        raise BucketFailure("the restore target s3://%s/%s is the backup itself" % target,
                            "pick another -e target_prefix or -e target_bucket")
    start, end = params["min_time_ms"], params["max_time_ms"]
    backup_blocks = list_blocks(client, *source)
    # Plan against an empty target first: which backup copies are complete and sound.
    sound = plan(backup_blocks, {})
    broken = sorted(u for u, (a, _) in sound.items() if a == "broken")
    if broken:
        raise BucketFailure(
            "backup block(s) in s3://%s/%s are damaged: %s" % (
                source[0], source[1], "; ".join("%s: %s" % (u, sound[u][1]) for u in broken)),
            "restore the others with -e min_time/max_time, or an earlier version of the files",
            checks=[{"name": "backup blocks", "status": "fail", "evidence": "; ".join(broken),
                     "hint": "a backup block with meta.json must have index and chunks/"}])
    unfinished = sorted(u for u, (a, _) in sound.items() if a == "pending")
    selected = {}
    for ulid in sorted(u for u, (a, _) in sound.items() if a == "copy"):
        meta = read_meta(client, source[0], source[1], ulid)
        if overlaps(meta, start, end):
            selected[ulid] = {"minTime": int(meta["minTime"]), "maxTime": int(meta["maxTime"]),
                              "labels": (meta.get("thanos") or {}).get("labels", {})}
    target_blocks = list_blocks(client, *target)
    actions = plan(backup_blocks, target_blocks, repair=True, include=set(selected))
    taken = sorted(u for u, (a, why) in actions.items() if a == "copy" and why != "new")
    if taken and not params["overwrite"]:
        raise BucketFailure(
            "%d selected block(s) already exist in s3://%s/%s and differ from the backup: %s"
            % (len(taken), target[0], target[1], "; ".join(
                "%s (%s)" % (u, actions[u][1]) for u in taken)),
            "nothing was restored: restore into another -e target_prefix, or replace them with"
            " -e overwrite=true")
    skipped = sorted(u for u, (a, _) in actions.items() if a == "skip")
    checks = [{"name": "backup blocks", "status": "ok", "evidence": (
        "%d complete block(s) in s3://%s/%s, %d selected%s, %d unfinished (not restored)" % (
            len(sound) - len(unfinished), source[0], source[1], len(selected),
            "" if start is None and end is None else " by time range", len(unfinished))),
        "hint": ""}]
    result = {"changed": any(a == "copy" for a, _ in actions.values()), "selected": selected,
              "skipped_blocks": skipped, "unfinished": unfinished, "bytes_copied": 0,
              "checks": checks,
              "diff": diff_of(actions, backup_blocks, *target)}
    where = "s3://%s/%s" % target
    if check_mode:
        result["msg"] = "%s into %s; would skip %d (already there with equal sizes)" % (
            summarize(actions, backup_blocks, "would restore"), where, len(skipped))
        return result
    restored, copied_bytes, progress, seconds = copy_planned(
        client, params, actions, backup_blocks, source, target)
    after = list_blocks(client, *target)
    problems = ["%s/%s" % (u, d) for u in sorted(selected)
                for d in size_differences(backup_blocks[u], after.get(u, {}))]
    checks.append({"name": "restored sizes", "status": "fail" if problems else "ok",
                   "evidence": "; ".join(problems) if problems else
                   "%d block(s) in %s with the backup's files and sizes" % (len(selected), where),
                   "hint": "run again with -e overwrite=true" if problems else ""})
    result.update(restored=restored, bytes_copied=copied_bytes, progress=progress,
                  seconds=round(seconds, 1))
    summary = ("restored %d block(s), %d bytes (%s) in %.1f s into %s; skipped %d (already"
               " there with equal sizes)" % (len(restored), copied_bytes,
                                             human_bytes(copied_bytes), seconds, where,
                                             len(skipped)))
    if problems:
        raise BucketFailure(summary + ": restored sizes: " + "; ".join(problems),
                            "run again with -e overwrite=true",
                            **{k: v for k, v in result.items() if k != "diff"})
    result["msg"] = summary
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = restore(connect(module.params), module.params, module.check_mode)
    except BucketFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
