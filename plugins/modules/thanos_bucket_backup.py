#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: thanos_bucket_backup
short_description: Copy new Thanos blocks to a backup bucket server-side and verify the copies
description:
  - Lists the Thanos blocks (C(ULID/) prefixes with C(meta.json)) of the source bucket and of the
    backup prefix, copies every block the backup lacks with server-side copy (boto3's transfer
    manager; parallel, multipart copy above I(multipart_threshold)), C(meta.json) last and only
    after every other file of the block has been copied and its size verified, so a block
    without C(meta.json) in the backup is an unfinished copy, and the next run redoes it.
  - A block whose backup copy is complete and has the source's sizes is skipped. A complete
    copy with other sizes is an integrity failure (the task fails naming the block and file)
    unless I(repair) is set, which copies it again (versioning keeps the old version).
  - Source blocks without C(meta.json) (an upload in progress) and blocks marked for deletion
    (the compactor replaced them) are left out; a source block with C(meta.json) but without
    C(index) or C(chunks/) fails the task.
  - After copying, every backed-up block is checked again in the backup (C(meta.json),
    C(index), C(chunks/), sizes equal to the source).
  - Versioning must be C(Enabled) on both buckets (a deleted or overwritten block must stay
    recoverable); with I(require_versioning=false) it is a warning.
  - Check mode lists the blocks it would copy (and why) and copies nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.s3
options:
  source_bucket:
    description: The bucket Thanos uploads blocks to.
    type: str
    required: true
  source_prefix:
    description: Prefix of the blocks in the source bucket (Thanos objstore C(prefix)), ending in C(/).
    type: str
    default: ""
  target_bucket:
    description: The backup bucket.
    type: str
    required: true
  target_prefix:
    description: Prefix of the block copies in the backup bucket, ending in C(/).
    type: str
    default: thanos-blocks/
  require_versioning:
    description: Fail when versioning is not C(Enabled) on both buckets (else warn).
    type: bool
    default: true
  repair:
    description: Copy again a complete backup block whose sizes differ from the source.
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
- name: Back up new Thanos blocks
  watchkeeper.platform.thanos_bucket_backup:
    s3_endpoint: http://minio:9000
    s3_access_key: "{{ wk_s3_access_key | watchkeeper.platform.secret }}"
    s3_secret_key: "{{ wk_s3_secret_key | watchkeeper.platform.secret }}"
    source_bucket: thanos-blocks
    target_bucket: watchkeeper-backups
"""

RETURN = r"""
skipped_blocks:
  description: ULIDs of the blocks already backed up with equal sizes (not copied again).
  type: list
  returned: always
copied:
  description: ULIDs of the blocks copied by this run.
  type: list
  returned: when not in check mode
planned:
  description: Every source block with its action (copy, skip, mismatch, pending, broken, marked) and reason.
  type: dict
  returned: always
bytes_copied:
  description: Bytes copied by this run.
  type: int
  returned: always
bytes_skipped:
  description: Bytes of the blocks already backed up.
  type: int
  returned: always
progress:
  description: Samples taken while copying (seconds, blocks and bytes done / total, MiB/s).
  type: list
  returned: when not in check mode
checks:
  description: bucket versioning, source blocks, backup integrity (name, status, evidence, hint).
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3 import S3_SPEC, connect
from ansible_collections.watchkeeper.platform.plugins.module_utils.thanos_blocks import (
    COPY_SPEC,
    BucketFailure,
    block_bytes,
    copy_planned,
    diff_of,
    human_bytes,
    list_blocks,
    missing_parts,
    plan,
    size_differences,
    summarize,
    versioning,
)

ARGUMENT_SPEC = dict(
    S3_SPEC,
    source_bucket=dict(type="str", required=True),
    source_prefix=dict(type="str", default=""),
    target_bucket=dict(type="str", required=True),
    target_prefix=dict(type="str", default="thanos-blocks/"),
    require_versioning=dict(type="bool", default=True),
    repair=dict(type="bool", default=False),
    **COPY_SPEC
)


def versioning_check(client, params):
    states = [(b, versioning(client, b)) for b in (params["source_bucket"],
                                                    params["target_bucket"])]
    off = ["%s is %s" % (b, s) for b, s in states if s != "Enabled"]
    evidence = ", ".join("%s: %s" % pair for pair in states)
    if not off:
        return {"name": "bucket versioning", "status": "ok", "evidence": evidence, "hint": ""}
    hint = ("enable it (aws s3api put-bucket-versioning --bucket NAME --versioning-configuration"
            " Status=Enabled): without it a deleted or overwritten block is gone for good")
    if params["require_versioning"]:
        raise BucketFailure("bucket versioning is not Enabled: %s" % ", ".join(off), hint,
                            checks=[{"name": "bucket versioning", "status": "fail",
                                     "evidence": evidence, "hint": hint}])
    return {"name": "bucket versioning", "status": "warn", "evidence": evidence, "hint": hint}


def integrity(source_blocks, target_blocks, ulids):
    """Every backed-up block complete in the backup with the source's sizes."""
    problems = []
    for ulid in ulids:
        copy = target_blocks.get(ulid, {})
        lacking = missing_parts(copy)
        if lacking:
            problems.append("%s lacks %s" % (ulid, ", ".join(lacking)))
        problems += ["%s/%s" % (ulid, d) for d in size_differences(source_blocks[ulid], copy)]
    return problems


def backup(client, params, check_mode):
    source = (params["source_bucket"], params["source_prefix"])
    target = (params["target_bucket"], params["target_prefix"])
    if source == target or (source[0] == target[0] and not source[1]
                            and not target[1]):
        raise BucketFailure("the backup location s3://%s/%s is the source itself"
                            % target, "use another target bucket or prefix")
    checks = [versioning_check(client, params)]
    source_blocks = list_blocks(client, *source)
    target_blocks = list_blocks(client, *target)
    actions = plan(source_blocks, target_blocks, repair=params["repair"])

    def named(kind):
        return sorted(u for u, (a, _) in actions.items() if a == kind)

    broken, mismatched = named("broken"), named("mismatch")
    skipped = named("skip")
    checks.append({
        "name": "source blocks", "status": "fail" if broken else "ok",
        "evidence": ("; ".join("%s: %s" % (u, actions[u][1]) for u in broken) if broken else
                     "%d complete block(s) in s3://%s/%s, %d upload(s) in progress, %d marked"
                     " for deletion" % (len(actions) - len(named("pending")) - len(named("marked")),
                                        source[0], source[1], len(named("pending")),
                                        len(named("marked")))),
        "hint": "a block with meta.json must have index and chunks/: inspect it with"
                " `thanos tools bucket verify`" if broken else ""})
    result = {
        "changed": bool(named("copy")), "planned": {u: {"action": a, "reason": r}
                                                   for u, (a, r) in actions.items()},
        "skipped_blocks": skipped, "pending": named("pending"), "marked": named("marked"),
        "bytes_skipped": sum(block_bytes(source_blocks[u]) for u in skipped),
        "bytes_copied": 0, "checks": checks,
        "diff": diff_of(actions, source_blocks, *target),
    }
    where = "s3://%s/%s" % target
    mismatch_hint = ("a complete backup block differs from its source: inspect it (versioning"
                     " keeps earlier versions), then copy it again with -e repair=true")
    if check_mode:
        if mismatched:
            checks.append({"name": "backup integrity", "status": "fail", "evidence": "; ".join(
                "%s: %s" % (u, actions[u][1]) for u in mismatched), "hint": mismatch_hint})
        summary = "%s to %s; would skip %d (present with equal sizes)" % (
            summarize(actions, source_blocks, "would copy"), where, len(skipped))
        return finish(summary, checks, result)
    copied, copied_bytes, progress, seconds = copy_planned(
        client, params, actions, source_blocks, source, target)
    result.update(copied=copied, bytes_copied=copied_bytes, progress=progress,
                  seconds=round(seconds, 1))
    backed_up = sorted(set(copied) | set(skipped) | set(mismatched))
    problems = integrity(source_blocks, list_blocks(client, *target), backed_up)
    checks.append({
        "name": "backup integrity", "status": "fail" if problems else "ok",
        "evidence": ("; ".join(problems) if problems else
                     "%d block(s) in %s with meta.json, index, chunks/ and the source's sizes"
                     % (len(backed_up), where)),
        "hint": mismatch_hint if problems else ""})
    rate = copied_bytes / 1048576.0 / seconds if seconds > 0 else 0.0
    summary = ("copied %d block(s), %d bytes (%s) in %.1f s (%.1f MiB/s) to %s; skipped %d"
               " (present with equal sizes, %d bytes); %d upload(s) in progress left for the"
               " next run" % (len(copied), copied_bytes, human_bytes(copied_bytes), seconds,
                              rate, where, len(skipped), result["bytes_skipped"],
                              len(result["pending"])))
    return finish(summary, checks, result)


def finish(summary, checks, result):
    """The result, or a BucketFailure naming every failed check (with the result's details)."""
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        raise BucketFailure(
            summary + ": " + "; ".join("%s: %s" % (c["name"], c["evidence"]) for c in failed),
            failed[0]["hint"], **{k: v for k, v in result.items() if k != "diff"})
    result["msg"] = summary
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = backup(connect(module.params), module.params, module.check_mode)
    except BucketFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
