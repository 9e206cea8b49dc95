#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: backup_verify_plan
short_description: Find the newest complete backup of each kind a cluster declares
description:
  - Read-only. For each backup kind (C(tsdb), C(bucket), C(opensearch)) decides C(verify)
    (the newest complete backup, and what restoring it takes), C(skipped) (the inventory does
    not declare the kind, or the user skipped it by name, with the reason) or
    C(failed) (declared but no complete backup exists, the store cannot be read, or a program
    the check needs is absent). A declared kind the user skips by name (I(skip)) is
    C(skipped), saying so.
  - C(tsdb) - the newest backup of backup-tsdb with a manifest under C(PREFIX/CLUSTER/).
  - C(bucket) - backup-bucket's complete block copies (with meta.json); the restore takes those
    overlapping the I(bucket_window_hours) before the newest block's maxTime.
  - C(opensearch) - the newest SUCCESS snapshot of the repository.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  cluster:
    description: Cluster name (the backups' C(CLUSTER) component).
    type: str
    required: true
  declared:
    description: Kinds the inventory declares (C(tsdb), C(bucket), C(opensearch)).
    type: list
    elements: str
    default: []
  undeclared_reasons:
    description: Per undeclared kind, the variables that would declare it.
    type: dict
    default: {}
  skip:
    description: Kinds the user asked not to verify (C(-e skip=bucket)); skipped, saying so.
    type: list
    elements: str
    default: []
  s3_endpoint:
    description: S3 endpoint URL.
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
  backups_bucket:
    description: The backup bucket (wk_s3_bucket_backups).
    type: str
    default: ""
  tsdb_prefix:
    description: backup-tsdb's key prefix.
    type: str
    default: prometheus-tsdb
  bucket_prefix:
    description: backup-bucket's prefix of the block copies.
    type: str
    default: thanos-blocks/
  bucket_window_hours:
    description: Hours of the newest block copies to restore and check.
    type: float
    default: 6
  thanos_binary:
    description: The thanos program (empty - absent; a declared bucket kind then fails).
    type: str
    default: ""
  prometheus_binary:
    description: The prometheus program (empty - absent; a declared tsdb kind then fails).
    type: str
    default: ""
  opensearch_url:
    description: OpenSearch URL.
    type: str
    default: ""
  opensearch_username:
    description: OpenSearch user.
    type: str
  opensearch_password:
    description: OpenSearch password.
    type: str
  repository:
    description: backup-opensearch's snapshot repository.
    type: str
    default: watchkeeper
"""

EXAMPLES = r"""
- name: Plan what to restore and check
  watchkeeper.platform.backup_verify_plan:
    cluster: observability
    declared: [tsdb, bucket, opensearch]
    backups_bucket: watchkeeper-backups
    opensearch_url: http://opensearch:9200
"""

RETURN = r"""
kinds:
  description: Per kind - status (verify, skipped, failed), evidence, hint, and what to restore.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.backup_verify import (
    KINDS,
    iso,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    OpenSearchFailure,
    call,
    connect,
    not_found,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    newest_successful,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import (
    backup_prefix,
    newest_complete,
    read_manifest,
    s3_reason,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.thanos_blocks import (
    BucketFailure,
    list_blocks,
    plan,
    read_meta,
)

ARGUMENT_SPEC = dict(
    s3.S3_SPEC,
    cluster=dict(type="str", required=True),
    declared=dict(type="list", elements="str", default=[]),
    undeclared_reasons=dict(type="dict", default={}),
    skip=dict(type="list", elements="str", default=[]),
    backups_bucket=dict(type="str", default=""),
    tsdb_prefix=dict(type="str", default="prometheus-tsdb"),
    bucket_prefix=dict(type="str", default="thanos-blocks/"),
    bucket_window_hours=dict(type="float", default=6.0),
    thanos_binary=dict(type="str", default=""),
    prometheus_binary=dict(type="str", default=""),
    opensearch_url=dict(type="str", default=""),
    opensearch_username=dict(type="str"),
    opensearch_password=dict(type="str", no_log=True),
    repository=dict(type="str", default="watchkeeper"),
)
#: Metas read to find the newest block copy (ULIDs sort by creation; the newest data is among
#: the newest blocks).
NEWEST_METAS = 20


def failed(evidence, hint):
    return {"status": "failed", "evidence": evidence, "hint": hint}


def skipped(evidence, hint=""):
    return {"status": "skipped", "evidence": evidence, "hint": hint}


def plan_tsdb(client, p):
    bucket = p["backups_bucket"]
    base = backup_prefix(p["tsdb_prefix"], p["cluster"], "")
    name = newest_complete(client, bucket, base)
    if name is None:
        return failed("no complete backup (with manifest.json) under s3://%s/%s" % (bucket, base),
                      "run backup-tsdb (or fix -e tsdb_prefix)")
    manifest = read_manifest(client, bucket, base + name + "/") or {}
    if not p["prometheus_binary"]:
        return failed("backup s3://%s/%s%s/ found, but it cannot be verified: no prometheus"
                      " program to start on it (no wk_prometheus_binary, no -e"
                      " prometheus_binary, none at /usr/bin/prometheus or on PATH)"
                      % (bucket, base, name),
                      "set wk_prometheus_binary in the inventory (or -e prometheus_binary=PATH),"
                      " or skip the kind by name: -e skip=tsdb")
    return {"status": "verify", "backup": name, "location": "s3://%s/%s%s/" % (bucket, base, name),
            "taken": manifest.get("timestamp") or name, "blocks": len(manifest.get("blocks") or []),
            "min_time": manifest.get("min_time"), "max_time": manifest.get("max_time"),
            "evidence": "would restore s3://%s/%s%s/ (%d block(s), %s .. %s, %d files) and start"
                        " %s on it: series > 0, samples within the manifest's range" % (
                            bucket, base, name, len(manifest.get("blocks") or []),
                            iso(manifest.get("min_time")), iso(manifest.get("max_time")),
                            manifest.get("file_count") or 0, p["prometheus_binary"])}


def plan_bucket(client, p):
    bucket, prefix = p["backups_bucket"], p["bucket_prefix"]
    copies = list_blocks(client, bucket, prefix)
    complete = sorted(u for u, (a, _) in plan(copies, {}).items() if a == "copy")
    if not complete:
        return failed("no complete block copy (with meta.json) under s3://%s/%s (%d block"
                      " prefix(es) without it)" % (bucket, prefix, len(copies)),
                      "run backup-bucket (or fix -e bucket_prefix)")
    newest = max(int(read_meta(client, bucket, prefix, u)["maxTime"])
                 for u in complete[-NEWEST_METAS:])
    start = newest - int(p["bucket_window_hours"] * 3600 * 1000)
    if not p["thanos_binary"]:
        return failed("%d complete block copies in s3://%s/%s, but they cannot be verified: no"
                      " thanos program to serve them (no wk_thanos_binary, no -e thanos_binary,"
                      " no thanos on PATH)" % (len(complete), bucket, prefix),
                      "set wk_thanos_binary in the inventory (or -e thanos_binary=PATH), or skip"
                      " the kind by name: -e skip=bucket")
    return {"status": "verify", "min_time_ms": start, "newest_max_time": newest,
            "evidence": "would restore the block copies of s3://%s/%s overlapping %s .. %s (of %d"
                        " complete) into a scratch prefix, serve them with thanos store + query"
                        " (%s) and check series and time range" % (
                            bucket, prefix, iso(start), iso(newest), len(complete),
                            p["thanos_binary"])}


def plan_opensearch(p):
    client = connect({"url": p["opensearch_url"], "username": p["opensearch_username"],
                      "password": p["opensearch_password"], "request_timeout": 30.0})
    repository = p["repository"]
    try:
        found = call("GET _snapshot/%s/_all" % repository, client.snapshot.get,
                     repository=repository, snapshot="_all")["snapshots"]
    except OpenSearchFailure as exc:
        if not_found(exc):
            return failed("snapshot repository %s does not exist" % repository,
                          "run backup-opensearch (or fix -e repository)")
        raise
    chosen = newest_successful(found)
    if chosen is None:
        return failed("repository %s holds no successful snapshot (%d other)" % (
            repository, len(found)), "run backup-opensearch")
    indices = [i for i in chosen.get("indices") or [] if not i.startswith(".")]
    return {"status": "verify", "snapshot": chosen["snapshot"],
            "taken_ms": chosen.get("end_time_in_millis"),
            "evidence": "would restore snapshot %s/%s (%d index(es), ended %s) into scratch"
                        " indices, compare document counts with the backup's, delete them" % (
                            repository, chosen["snapshot"], len(indices),
                            chosen.get("end_time") or "?")}


def plan_all(p, connect_s3):
    kinds = {}
    for kind in KINDS:
        if kind not in p["declared"]:
            kinds[kind] = skipped("not declared by the inventory",
                                  (p["undeclared_reasons"] or {}).get(kind, ""))
            continue
        if kind in (p.get("skip") or []):
            kinds[kind] = skipped("declared by the inventory, skipped by name (-e skip=%s):"
                                  " not verified" % kind)
            continue
        try:
            if kind == "tsdb":
                kinds[kind] = plan_tsdb(connect_s3(), p)
            elif kind == "bucket":
                kinds[kind] = plan_bucket(connect_s3(), p)
            else:
                kinds[kind] = plan_opensearch(p)
        except (BucketFailure, OpenSearchFailure) as exc:
            kinds[kind] = failed(exc.message, exc.hint)
        except Exception as exc:  # botocore: translate at the edge
            reason, hint = s3_reason(exc)
            kinds[kind] = failed("reading the %s backups: %s" % (kind, reason), hint)
    return kinds


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    kinds = plan_all(p, lambda: s3.connect(p))
    summary = "; ".join("%s: %s" % (k, kinds[k]["status"]) for k in KINDS)
    module.exit_json(changed=False, kinds=kinds, msg=summary)


if __name__ == "__main__":
    main()
