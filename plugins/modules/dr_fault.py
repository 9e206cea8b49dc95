#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: dr_fault
short_description: Plan and inject the fault of a DR drill
description:
  - I(action=plan) reads what the drill would destroy and the backup it would recover from,
    with its age, and changes nothing (it runs in check mode too, as the drill's plan).
  - I(action=inject) destroys exactly the objects the plan named (names, never patterns) and
    returns the fault's epoch and its detection's (the first failed read).
  - Scenario C(opensearch-loss) - the live log indices matching I(indices) that the snapshot
    holds are deleted; an index the snapshot lacks is never touched.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  scenario:
    description: The drill's scenario.
    type: str
    required: true
    choices: [opensearch-loss]
  action:
    description: Plan (read-only) or inject the planned fault.
    type: str
    required: true
    choices: [plan, inject]
  repository:
    description: Snapshot repository the recovery restores from.
    type: str
    default: watchkeeper
  snapshot:
    description: Snapshot to restore from; empty means the newest successful one.
    type: str
    default: ""
  indices:
    description: Patterns of the log indices to destroy.
    type: list
    elements: str
    default: ["logs-*"]
  plan:
    description: With I(action=inject), the result of the plan step.
    type: dict
  record_file:
    description:
      - With I(action=inject), a JSON file the plan is written to before anything is destroyed
        (what the drill's recovery and rollback restore); empty writes none.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Plan the drill
  watchkeeper.platform.dr_fault:
    url: http://opensearch:9200
    scenario: opensearch-loss
    action: plan
  register: drill_plan
"""

RETURN = r"""
destroys:
  description: With I(action=plan), the indices the drill deletes.
  type: list
  returned: action=plan
snapshot:
  description: With I(action=plan), the snapshot the recovery restores from (name, end time, age).
  type: dict
  returned: action=plan
fault_injected:
  description: With I(action=inject), epoch seconds just before the delete.
  type: float
  returned: action=inject
detected:
  description: With I(action=inject), epoch seconds of the first failed search after it.
  type: float
  returned: action=inject
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import dr_opensearch
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    connect,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    scenario=dict(type="str", required=True, choices=["opensearch-loss"]),
    action=dict(type="str", required=True, choices=["plan", "inject"]),
    repository=dict(type="str", default="watchkeeper"),
    snapshot=dict(type="str", default=""),
    indices=dict(type="list", elements="str", default=["logs-*"]),
    plan=dict(type="dict"),
    record_file=dict(type="str", default=""),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        client = connect(params)
        if params["action"] == "plan":
            result = dr_opensearch.plan(client, params)
        elif module.check_mode:
            result = {"changed": True, "msg": "would delete: %s" % ", ".join(
                (params.get("plan") or {}).get("destroys") or [])}
        else:
            result = dr_opensearch.inject(client, params, params.get("plan") or {})
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
