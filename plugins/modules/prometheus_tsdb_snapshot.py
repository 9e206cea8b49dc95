#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: prometheus_tsdb_snapshot
short_description: Take a TSDB snapshot of a full Prometheus server through its admin API
description:
  - Reads the server's C(/api/v1/status/flags) and refuses, saying why and what to back up
    instead, a Prometheus Agent (no TSDB, no snapshot API) or a server whose admin API is off.
  - Calls C(POST /api/v1/admin/tsdb/snapshot), which hard-links the blocks (and, unless
    I(skip_head), writes the head as a block) under C(<tsdb>/snapshots/<name>), and checks the
    snapshot directory is visible at I(tsdb_path) from here.
  - Check mode lists the blocks the snapshot would hold (plus the head) and takes none.
  - Snapshots left under C(snapshots/) by earlier runs pin disk space; they are reported as a
    warning, never deleted (their owner is unknown).
version_added: 0.1.0
author: watchkeeper maintainers
options:
  url:
    description: Prometheus server base URL.
    type: str
    required: true
  tsdb_path:
    description: The server's TSDB directory as this host sees it (default its own flag).
    type: str
    default: ""
  skip_head:
    description: Leave out the in-memory head (the last 2 hours or so).
    type: bool
    default: false
  timeout:
    description: Seconds for the snapshot call.
    type: float
    default: 600
"""

EXAMPLES = r"""
- name: Take the TSDB snapshot
  watchkeeper.platform.prometheus_tsdb_snapshot:
    url: http://prometheus-ha-0:9090
    tsdb_path: /prometheus
  register: wk_snapshot
"""

RETURN = r"""
snapshot_name:
  description: The snapshot's name (empty in check mode).
  type: str
  returned: always
snapshot_dir:
  description: Its directory as seen from here.
  type: str
  returned: always
tsdb_path:
  description: The TSDB directory used.
  type: str
  returned: always
version:
  description: The server's version (buildinfo).
  type: str
  returned: always
blocks:
  description: Block directories of the TSDB (check mode) or of the snapshot.
  type: list
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import prom_tsdb
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import (
    is_block_dir,
)

ARGUMENT_SPEC = dict(
    url=dict(type="str", required=True),
    tsdb_path=dict(type="str", default=""),
    skip_head=dict(type="bool", default=False),
    timeout=dict(type="float", default=600.0),
)


def _blocks(directory):
    try:
        return sorted(n for n in os.listdir(directory) if is_block_dir(n))
    except OSError:
        return []


def take(params, check_mode):
    url = params["url"]
    flags, build = prom_tsdb.server_info(url)
    problem = prom_tsdb.server_problem(flags)
    if problem:
        raise prom_tsdb.PrometheusFailure("%s cannot be snapshot: %s" % (url, problem))
    path = prom_tsdb.tsdb_path(flags, params["tsdb_path"])
    problem = prom_tsdb.path_problem(path)
    if problem:
        raise prom_tsdb.PrometheusFailure(problem)
    snapshots = os.path.join(path, "snapshots")
    leftovers = _blocks_or_dirs(snapshots)
    checks = []
    if leftovers:
        checks.append({"name": "leftover snapshots", "status": "warn",
                       "evidence": "%d snapshot(s) under %s: %s" % (
                           len(leftovers), snapshots, ", ".join(leftovers[:5])),
                       "hint": "they pin the disk space of blocks retention dropped: delete"
                               " them once nobody uses them"})
    result = {"changed": True, "tsdb_path": path, "version": build.get("version", ""),
              "checks": checks}
    if check_mode:
        blocks = _blocks(path)
        result.update(snapshot_name="", snapshot_dir="", blocks=blocks,
                      msg="would snapshot %s: %d block(s)%s from %s" % (
                          url, len(blocks), "" if params["skip_head"] else " and the head",
                          path))
        return result
    name = prom_tsdb.snapshot(url, params["skip_head"], params["timeout"])
    directory = os.path.join(snapshots, name)
    if not os.path.isdir(directory):
        raise prom_tsdb.PrometheusFailure(
            "Prometheus created snapshot %s, but %s does not exist here" % (name, directory),
            "wk_prometheus_tsdb_path must be this server's --storage.tsdb.path as this host"
            " sees it (%s reports %s); delete the snapshot on the server"
            % (url, flags.get("storage.tsdb.path")))
    blocks = _blocks(directory)
    result.update(snapshot_name=name, snapshot_dir=directory, blocks=blocks,
                  msg="snapshot %s of %s (Prometheus %s): %d block(s) in %s" % (
                      name, url, result["version"] or "?", len(blocks), directory))
    return result


def _blocks_or_dirs(directory):
    try:
        return sorted(n for n in os.listdir(directory)
                      if os.path.isdir(os.path.join(directory, n)))
    except OSError:
        return []


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = take(module.params, module.check_mode)
    except prom_tsdb.PrometheusFailure as exc:
        module.fail_json(**exc.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
