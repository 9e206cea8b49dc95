#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
# The logic runs on the controller as an action plugin (plugins/action/checklist_verdict.py);
# this file carries its documentation.
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: checklist_verdict
short_description: Fail a cluster whose checklist has a failed check
description:
  - Reads the registered results of the cluster's checklist tasks and fails, naming every
    failed check, when any check failed (or warned, with I(strict)). Otherwise ok, with the
    worst status and the counts per status.
  - Pure computation on the controller; nothing is read or changed.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  results:
    description: The registered results of the checklist tasks.
    type: list
    elements: dict
    required: true
  strict:
    description: Fail on a warning too.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Verdict
  watchkeeper.platform.checklist_verdict:
    results: ["{{ wk_daily }}", "{{ wk_remote_write }}"]
"""

RETURN = r"""
msg:
  description: The worst status, counts per status and the failed checks.
  type: str
  returned: always
"""
