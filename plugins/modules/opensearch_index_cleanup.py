#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: opensearch_index_cleanup
short_description: Delete OpenSearch indices matching a pattern that are older than N days
description:
  - Lists the open and closed (not hidden) indices matching I(pattern) and deletes those older
    than I(older_than_days), by the date in their name (I(date_source=name), e.g.
    C(logs-2024.01.31) with I(date_format) C(%Y.%m.%d)) or by their creation date
    (I(date_source=creation)).
  - Deletes by exact name, one index per request, and only names that match I(pattern), never
    a wildcard, never an index without a date in its name (by name). Patterns that would reach
    every index, system or hidden indices are refused.
  - Check mode lists exactly the indices it would delete and deletes nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  pattern:
    description: One index pattern with a literal prefix, e.g. C(logs-*).
    type: str
    required: true
  older_than_days:
    description: Delete indices older than this many days (at least 1).
    type: int
    required: true
  date_source:
    description: Where an index's age comes from.
    type: str
    choices: [name, creation]
    default: name
  date_format:
    description: strftime format of the date in index names (%Y %m %d %j %y %H).
    type: str
    default: "%Y.%m.%d"
"""

EXAMPLES = r"""
- name: Delete log indices older than 30 days
  watchkeeper.platform.opensearch_index_cleanup:
    url: http://opensearch:9200
    pattern: logs-*
    older_than_days: 30
"""

RETURN = r"""
decisions:
  description: Per matching index - index, date, age_days, action (keep / delete), reason.
  type: list
  returned: always
deleted:
  description: Indices deleted (in check mode, those that would be deleted).
  type: list
  returned: always
kept:
  description: Matching indices kept.
  type: list
  returned: always
"""

from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.log_indices import (
    date_regex,
    select_old_indices,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    call,
    connect,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    pattern_problem,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    pattern=dict(type="str", required=True),
    older_than_days=dict(type="int", required=True),
    date_source=dict(type="str", choices=["name", "creation"], default="name"),
    date_format=dict(type="str", default="%Y.%m.%d"),
)


def list_indices(client, pattern):
    rows = call("GET _cat/indices/%s" % pattern, client.cat.indices, index=pattern,
                format="json", h="index,creation.date,status", expand_wildcards="open,closed")
    return [{"index": r["index"],
             "creation_date_ms": int(r["creation.date"]) if r.get("creation.date") else None,
             "status": r.get("status")} for r in rows]


def cleanup(client, params, check_mode):
    problem = pattern_problem(params["pattern"])
    if problem:
        raise OpenSearchFailure(problem)
    if params["older_than_days"] < 1:
        raise OpenSearchFailure("older_than_days must be at least 1, got %d"
                                % params["older_than_days"])
    try:
        date_regex(params["date_format"])
    except ValueError as exc:
        raise OpenSearchFailure(str(exc)) from exc
    indices = list_indices(client, params["pattern"])
    decisions = select_old_indices(indices, params["pattern"], params["older_than_days"],
                                   params["date_source"], params["date_format"],
                                   datetime.now(UTC))
    doomed = [d["index"] for d in decisions if d["action"] == "delete"]
    kept = [d["index"] for d in decisions if d["action"] == "keep"]
    result = {"changed": bool(doomed), "decisions": decisions, "deleted": doomed, "kept": kept,
              "diff": {"before": sorted(doomed + kept), "after": sorted(kept),
                       "before_header": "indices %s" % params["pattern"]}}
    if check_mode:
        result["msg"] = ("would delete %d index(es) older than %d day(s): %s; keep %d" % (
            len(doomed), params["older_than_days"], ", ".join(doomed), len(kept)) if doomed
            else "would delete nothing; %d matching index(es) are recent enough" % len(kept))
        return result
    deleted = []
    for name in doomed:
        # One exact name per request: a wildcard here could reach an index nobody selected.
        try:
            call("DELETE %s" % name, client.indices.delete, index=name,
                 expand_wildcards="none")
        except OpenSearchFailure as exc:
            exc.details.update(deleted=deleted, decisions=decisions, changed=bool(deleted))
            raise
        deleted.append(name)
    result["deleted"] = deleted
    result["msg"] = ("deleted %d index(es) older than %d day(s): %s; kept %d" % (
        len(deleted), params["older_than_days"], ", ".join(deleted), len(kept)) if deleted
        else "nothing to delete; %d matching index(es) are recent enough" % len(kept))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = cleanup(connect(module.params), module.params, module.check_mode)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
