#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: dr_measure
short_description: Measure a DR drill's RTO, RPO and integrity from data, and record them
description:
  - RTO is the time from the fault to the first successful read after the recovery (for
    C(opensearch-loss), a search of the restored indices that returns every restored
    document); RPO is the fault time minus the newest point the recovery brought back (the
    snapshot's end time); integrity compares what was restored with what the backup recorded.
  - Each measure is a check (a JUnit test case), a failed one first. The scenario's entry,
    with its timeline and each stage's time, is added to I(drill_file) (drill.json).
  - Fails when a measure misses its target or integrity does not hold.
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
  drill_id:
    description: The drill's id (the run id).
    type: str
    required: true
  fault:
    description: The result of the dr_fault inject step.
    type: dict
    required: true
  recovery:
    description: The result of the recovery (for opensearch-loss, opensearch_restore in place).
    type: dict
    required: true
  rto_target:
    description: RTO target in seconds.
    type: float
    required: true
  rpo_target:
    description: RPO target in seconds.
    type: float
    required: true
  timeout:
    description: Seconds to wait for the first successful read.
    type: float
    default: 300
  drill_file:
    description: drill.json to add the scenario's entry to; empty writes none.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Measure
  watchkeeper.platform.dr_measure:
    url: http://opensearch:9200
    scenario: opensearch-loss
    drill_id: "{{ wk_run_id }}"
    fault: "{{ drill_fault }}"
    recovery: "{{ opensearch_restored }}"
    rto_target: 900
    rpo_target: 86400
"""

RETURN = r"""
checks:
  description: RTO, RPO and one integrity check per recovered object; failed ones first.
  type: list
  returned: always
drill:
  description: The scenario's entry of drill.json (targets, measures, timeline, evidence).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import dr, dr_opensearch
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    connect,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    scenario=dict(type="str", required=True, choices=["opensearch-loss"]),
    drill_id=dict(type="str", required=True),
    fault=dict(type="dict", required=True),
    recovery=dict(type="dict", required=True),
    rto_target=dict(type="float", required=True),
    rpo_target=dict(type="float", required=True),
    timeout=dict(type="float", default=300.0),
    drill_file=dict(type="str", default=""),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=False)
    params = module.params
    try:
        verdict, entry = dr_opensearch.measure(connect(params), params)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if params["drill_file"]:
        dr.append(params["drill_file"], entry)
    summary = "; ".join(c["evidence"] for c in verdict["checks"][:2])
    result = {"changed": False, "checks": verdict["checks"], "drill": entry}
    if not verdict["passed"]:
        failed = [c for c in verdict["checks"] if c["status"] == "fail"]
        module.fail_json(msg="drill %s failed: %s" % (params["scenario"], "; ".join(
            c["evidence"] for c in failed)), **result)
    module.exit_json(msg="drill %s passed: %s" % (params["scenario"], summary), **result)


if __name__ == "__main__":
    main()
