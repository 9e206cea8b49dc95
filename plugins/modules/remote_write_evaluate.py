#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
# The logic runs on the controller as an action plugin (plugins/action/remote_write_evaluate.py);
# this file carries its documentation.
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: remote_write_evaluate
short_description: Judge remote write and ingestion from two remote_write_sample results
description:
  - Computes per-queue rates (sent, failed, retried, dropped), pending samples, lag and shards,
    and receiver readiness and ingestion, and returns them as checks with evidence and hints.
  - Fails when any check fails, naming the failing checks; warnings do not fail.
  - Pure computation on the controller; nothing is read or changed.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  first:
    description: The first remote_write_sample result.
    type: dict
    required: true
  second:
    description: The second remote_write_sample result, taken after the rate window.
    type: dict
    required: true
  thresholds:
    description: C(lag_seconds), C(failed_ratio), C(pending_samples), C(stale_ingest_seconds).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Evaluate remote write
  watchkeeper.platform.remote_write_evaluate:
    first: "{{ first }}"
    second: "{{ second }}"
    thresholds: {lag_seconds: 120}
"""

RETURN = r"""
checks:
  description: List of C(name), C(status) (ok, warn, fail, skipped), C(evidence), C(hint).
  type: list
  returned: always
"""
