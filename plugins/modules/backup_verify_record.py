#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: backup_verify_record
short_description: The verdict of a backup verification, and its metrics
description:
  - One check per backup kind (C(tsdb backup), C(bucket backup), C(opensearch backup)) - ok
    with the evidence (series and time range served from the restored data, document counts),
    fail with the reason, skipped when the inventory does not declare the kind.
  - For each verified kind writes C(watchkeeper_backup_last_verified_timestamp_seconds{kind,
    cluster}), C(watchkeeper_backup_verified_backup_timestamp_seconds) and
    C(watchkeeper_backup_verified_backup_age_seconds) to a textfile-collector file of the
    cluster's own (earlier values of the other kinds carried forward; a failed verification
    never advances its kind's timestamp) and pushes them to a Pushgateway when one is given.
  - Fails when a declared kind failed. Check mode records nothing.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  cluster:
    description: Cluster name (the metrics' C(cluster) label).
    type: str
    required: true
  plan:
    description: backup_verify_plan's C(kinds).
    type: dict
    required: true
  outcomes:
    description: Per kind - C(error) (the failed task's message, empty when none) and the
      registered results C(restore) and C(serve).
    type: dict
    required: true
  textfile_dir:
    description: Textfile-collector directory.
    type: path
    required: true
  pushgateway:
    description: Pushgateway URL (empty - no push).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Record the verdict
  watchkeeper.platform.backup_verify_record:
    cluster: observability
    plan: "{{ wk_verify_plan.kinds }}"
    outcomes: {}
    textfile_dir: /var/lib/node_exporter/textfile
"""

RETURN = r"""
checks:
  description: One check per kind (name, status, evidence, hint).
  type: list
  returned: always
verified:
  description: Per verified kind, the metric values written.
  type: dict
  returned: always
textfile:
  description: The textfile written.
  type: str
  returned: when something was verified
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.backup_verify import (
    KINDS,
    kind_check,
    record_verified,
)

ARGUMENT_SPEC = dict(
    cluster=dict(type="str", required=True),
    plan=dict(type="dict", required=True),
    outcomes=dict(type="dict", required=True),
    textfile_dir=dict(type="path", required=True),
    pushgateway=dict(type="str", default=""),
)


def _ran(result):
    return isinstance(result, dict) and result and not result.get("skipped")


def taken_seconds(kind, planned, outcome):
    """When the verified backup's newest data was written (epoch seconds)."""
    restore = outcome.get("restore") or {}
    if kind == "tsdb":
        return (restore.get("max_time") or planned.get("max_time") or 0) / 1000.0
    if kind == "bucket":
        selected = restore.get("selected") or {}
        return max([int(b["maxTime"]) for b in selected.values()] or [0]) / 1000.0
    return (planned.get("taken_ms") or 0) / 1000.0


def evidence_of(kind, outcome):
    restore, serve = outcome.get("restore") or {}, outcome.get("serve") or {}
    if kind == "tsdb":
        return "%s; %s" % (restore.get("msg", ""), serve.get("evidence", ""))
    if kind == "bucket":
        return "%d block(s) restored from the backup into %s; %s" % (
            len(restore.get("selected") or {}), outcome.get("where", "scratch"),
            serve.get("evidence", ""))
    counts = restore.get("counts") or {}
    snapshot = (restore.get("snapshot") or {}).get("snapshot", "?")
    return "snapshot %s: %s" % (snapshot, ", ".join(
        "%s %s/%s documents" % (source, c.get("restored"), c.get("expected"))
        for source, c in sorted(counts.items())) or "no index")


def judge(p, check_mode):
    verdicts, verified = {}, {}
    now = time.time()
    for kind in KINDS:
        planned = (p["plan"] or {}).get(kind) or {"status": "skipped",
                                                 "evidence": "not planned"}
        outcome = (p["outcomes"] or {}).get(kind) or {}
        if planned["status"] != "verify":
            verdicts[kind] = {"status": planned["status"], "evidence": planned.get("evidence"),
                              "hint": planned.get("hint", "")}
        elif check_mode:
            verdicts[kind] = {"status": "skipped", "evidence": "check mode: "
                              + planned.get("evidence", "")}
        elif outcome.get("error"):
            verdicts[kind] = {"status": "failed", "evidence": outcome["error"],
                              "hint": outcome.get("hint") or "the backup cannot be trusted:"
                              " fix it (or the cause) and take a new backup; the"
                              " verification metric of this kind is not advanced"}
        elif not (_ran(outcome.get("restore")) and (kind == "opensearch"
                                                    or _ran(outcome.get("serve")))):
            verdicts[kind] = {"status": "failed", "evidence": "the restore or the check did"
                              " not run", "hint": "read the run's journal"}
        else:
            taken = taken_seconds(kind, planned, outcome)
            verdicts[kind] = {"status": "verified", "evidence": evidence_of(kind, outcome)}
            verified[kind] = {"last_verified_timestamp_seconds": now,
                              "verified_backup_timestamp_seconds": taken,
                              "verified_backup_age_seconds": max(0.0, now - taken)}
    checks = [kind_check(kind, verdicts[kind]) for kind in KINDS]
    result = {"changed": False, "checks": checks, "verified": verified}
    if verified and not check_mode:
        path, error = record_verified(p["textfile_dir"], p["cluster"], verified,
                                      p["pushgateway"] or None)
        result["textfile"] = path
        if error:
            result["warnings"] = [error]
    summary = "; ".join("%s %s" % (c["name"], c["status"]) for c in checks)
    result["msg"] = summary
    failed = [c for c in checks if c["status"] == "fail"]
    return result, failed


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result, failed = judge(module.params, module.check_mode)
    if failed:
        result["msg"] = "%d backup kind(s) failed verification: %s" % (
            len(failed), "; ".join("%s: %s" % (c["name"], c["evidence"]) for c in failed))
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
