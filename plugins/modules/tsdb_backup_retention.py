#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: tsdb_backup_retention
short_description: Keep N daily / weekly / monthly TSDB backups in S3; delete leftovers
description:
  - Lists the backups under C(s3://bucket/PREFIX/CLUSTER/) (one C(TIMESTAMP/) prefix each; complete
    only when it holds C(manifest.json)).
  - Keeps, among complete backups, the newest of each of the newest I(keep_daily) days,
    I(keep_weekly) ISO weeks and I(keep_monthly) months, and always the newest complete backup.
    Deletes the other complete backups.
  - Deletes incomplete backups (no manifest) older than I(run_timestamp), leftovers of a failed
    or killed run, including their unfinished multipart uploads. Prefixes whose name is not a
    timestamp are never touched.
  - A backup's manifest is deleted first, so a half-deleted backup never looks complete.
  - Check mode lists what would be deleted; I(planned) counts the backup the same check-mode
    run would have written as the newest complete one.
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
    description: C(PREFIX/CLUSTER/) of the cluster's backups.
    type: str
    required: true
  run_timestamp:
    description: This run's TIMESTAMP; incomplete backups older than it are deleted.
    type: str
    required: true
  keep_daily:
    description: Daily backups to keep.
    type: int
    default: 7
  keep_weekly:
    description: Weekly backups to keep.
    type: int
    default: 4
  keep_monthly:
    description: Monthly backups to keep.
    type: int
    default: 6
  planned:
    description: In check mode, the TIMESTAMP of the backup the run would have written.
    type: str
"""

EXAMPLES = r"""
- name: Apply backup retention
  watchkeeper.platform.tsdb_backup_retention:
    bucket: watchkeeper-backups
    cluster_prefix: prometheus-tsdb/observability/
    run_timestamp: 20260101T000000Z
    keep_daily: 7
"""

RETURN = r"""
decisions:
  description: Per backup, newest first - backup, complete, action, reason.
  type: list
  returned: always
deleted:
  description: Backups deleted (in check mode, that would be).
  type: list
  returned: always
kept:
  description: Backups kept.
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import (
    BackupFailure,
    delete_prefix,
    list_backups,
    s3_reason,
    select_retention,
)

ARGUMENT_SPEC = dict(
    s3.S3_SPEC,
    bucket=dict(type="str", required=True),
    cluster_prefix=dict(type="str", required=True),
    run_timestamp=dict(type="str", required=True),
    keep_daily=dict(type="int", default=7),
    keep_weekly=dict(type="int", default=4),
    keep_monthly=dict(type="int", default=6),
    planned=dict(type="str"),
)


def apply(client, params, check_mode):
    bucket, base = params["bucket"], params["cluster_prefix"]
    backups = list_backups(client, bucket, base)
    planned = params.get("planned") if check_mode else None
    if planned:
        backups = [b for b in backups if b["name"] != planned] + [
            {"name": planned, "complete": True}]
    decisions = select_retention(backups, params["run_timestamp"], params["keep_daily"],
                                 params["keep_weekly"], params["keep_monthly"])
    for decision in decisions:
        if decision["backup"] == planned:
            decision["reason"] = "would be written by this run; " + decision["reason"]
    doomed = [d["backup"] for d in decisions if d["action"] == "delete"]
    kept = [d["backup"] for d in decisions if d["action"] == "keep"]
    where = "s3://%s/%s" % (bucket, base)
    result = {"changed": bool(doomed), "decisions": decisions, "deleted": doomed, "kept": kept,
              "diff": {"before": sorted(doomed + kept), "after": sorted(kept),
                       "before_header": where}}
    if check_mode:
        result["msg"] = ("would delete %d backup(s) under %s: %s; keep %d" % (
            len(doomed), where, ", ".join(doomed), len(kept)) if doomed
            else "would delete nothing under %s; keep %d backup(s)" % (where, len(kept)))
        return result
    deleted, objects = [], 0
    for name in doomed:
        try:
            objects += delete_prefix(client, bucket, base + name + "/")
        except BackupFailure as exc:
            exc.details.update(deleted=deleted, decisions=decisions, changed=bool(deleted))
            raise
        deleted.append(name)
    result["msg"] = ("deleted %d backup(s) (%d objects) under %s: %s; kept %d" % (
        len(deleted), objects, where, ", ".join(deleted), len(kept)) if deleted
        else "nothing to delete under %s; kept %d backup(s)" % (where, len(kept)))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    for key in ("keep_daily", "keep_weekly", "keep_monthly"):
        if params[key] < 0:
            module.fail_json(msg="%s must be 0 or more" % key)
    try:
        result = apply(s3.connect(params), params, module.check_mode)
    except BackupFailure as exc:
        module.fail_json(**exc.result())
    except Exception as exc:  # botocore: translate at the edge
        reason, hint = s3_reason(exc)
        module.fail_json(msg="retention under s3://%s/%s: %s%s" % (
            params["bucket"], params["cluster_prefix"], reason, " (%s)" % hint if hint else ""))
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
