#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: opensearch_snapshot_retention
short_description: Delete OpenSearch snapshots beyond max age / max count, keeping a min count
description:
  - Lists the repository's snapshots whose name starts with I(prefix) (the ones the backup
    runbook takes; other snapshots are never touched) and deletes those older than
    I(max_age_days) or beyond the newest I(max_count).
  - Never deletes the newest C(SUCCESS) snapshot, the newest I(min_count) C(SUCCESS) snapshots,
    or a snapshot still running. Failed and partial snapshots count towards I(max_count) only.
  - Check mode lists what it would delete and deletes nothing. I(planned) names a snapshot the
    same check-mode run would have created, so the prediction counts it as the newest.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  repository:
    description: Snapshot repository.
    type: str
    required: true
  prefix:
    description: Only snapshots whose name starts with this are managed.
    type: str
    required: true
  max_age_days:
    description: Delete snapshots older than this many days (unset = no age limit).
    type: float
  max_count:
    description: Keep at most this many snapshots (unset = no count limit).
    type: int
  min_count:
    description: Always keep at least this many successful snapshots (at least 1).
    type: int
    default: 1
  planned:
    description: In check mode, a snapshot the run would have created (counted as the newest).
    type: str
  manifest_index:
    description: Index of the snapshots' manifest documents; a deleted snapshot's goes too.
    type: str
    default: watchkeeper-snapshots
"""

EXAMPLES = r"""
- name: Apply snapshot retention
  watchkeeper.platform.opensearch_snapshot_retention:
    url: http://opensearch:9200
    repository: watchkeeper
    prefix: watchkeeper-
    max_age_days: 30
    max_count: 50
    min_count: 3
"""

RETURN = r"""
decisions:
  description: Per managed snapshot, newest first - snapshot, state, age_days, action, reason.
  type: list
  returned: always
deleted:
  description: Snapshots deleted (in check mode, those that would be deleted).
  type: list
  returned: always
kept:
  description: Managed snapshots kept.
  type: list
  returned: always
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    call,
    connect,
    not_found,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    SUCCESS,
    select_retention,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    repository=dict(type="str", required=True),
    prefix=dict(type="str", required=True),
    max_age_days=dict(type="float"),
    max_count=dict(type="int"),
    min_count=dict(type="int", default=1),
    planned=dict(type="str"),
    manifest_index=dict(type="str", default="watchkeeper-snapshots"),
)


def list_snapshots(client, repository):
    """Every snapshot of the repository ([] when the repository does not exist yet)."""
    try:
        return call("GET _snapshot/%s/_all" % repository, client.snapshot.get,
                    repository=repository, snapshot="_all")["snapshots"]
    except OpenSearchFailure as exc:
        if not_found(exc):
            return []
        raise


def apply(client, params, check_mode):
    if params["min_count"] < 1:
        raise OpenSearchFailure("min_count must be at least 1 (the newest successful snapshot"
                                " is never deleted)")
    if params["max_count"] is not None and params["max_count"] < params["min_count"]:
        raise OpenSearchFailure("max_count %d is below min_count %d"
                                % (params["max_count"], params["min_count"]))
    now_ms = int(time.time() * 1000)
    snapshots = list_snapshots(client, params["repository"])
    if check_mode and params.get("planned"):
        snapshots = [*snapshots, {"snapshot": params["planned"], "state": SUCCESS,
                                  "start_time_in_millis": now_ms}]
    decisions = select_retention(snapshots, now_ms, params["prefix"], params["max_age_days"],
                                 params["max_count"], params["min_count"])
    planned = params.get("planned") if check_mode else None
    for decision in decisions:
        if decision["snapshot"] == planned:
            decision["reason"] = "would be created by this run; " + decision["reason"]
    doomed = [d["snapshot"] for d in decisions if d["action"] == "delete"]
    kept = [d["snapshot"] for d in decisions if d["action"] == "keep"]
    result = {"changed": bool(doomed), "decisions": decisions, "deleted": doomed, "kept": kept,
              "diff": {"before": sorted(doomed + kept), "after": sorted(kept),
                       "before_header": "_snapshot/%s (managed)" % params["repository"]}}
    if check_mode:
        result["msg"] = ("would delete %d snapshot(s): %s; keep %d" % (
            len(doomed), ", ".join(doomed), len(kept)) if doomed
            else "would delete nothing; keep %d snapshot(s)" % len(kept))
        return result
    deleted = []
    for name in doomed:
        try:
            call("DELETE _snapshot/%s/%s" % (params["repository"], name),
                 client.snapshot.delete, repository=params["repository"], snapshot=name)
        except OpenSearchFailure as exc:
            exc.details.update(deleted=deleted, decisions=decisions, changed=bool(deleted))
            raise
        deleted.append(name)
        # The manifest document of a deleted snapshot describes nothing any more.
        try:
            call("DELETE %s/_doc/%s" % (params["manifest_index"], name), client.delete,
                 index=params["manifest_index"], id=name)
        except OpenSearchFailure as exc:
            if not not_found(exc):
                raise
    result["msg"] = ("deleted %d snapshot(s): %s; kept %d" % (len(deleted), ", ".join(deleted),
                                                              len(kept)) if deleted
                     else "nothing to delete; kept %d snapshot(s)" % len(kept))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = apply(connect(module.params), module.params, module.check_mode)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
