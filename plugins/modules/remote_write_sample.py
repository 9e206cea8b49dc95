#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: remote_write_sample
short_description: Sample a Prometheus Agent's remote-write metrics and the receivers' ingestion
description:
  - Reads C(/-/ready) and C(/metrics) of the agent and of each receiver, keeping only the
    remote-write and ingestion metrics, and probes the remote-write endpoint over TCP.
  - Read-only; runs the same in check mode.
  - Two samples taken some seconds apart give rates; I(not_before) makes the second sample wait
    until the window has passed (and not at all when it already has, as on a large inventory).
  - With a local connection (every watchkeeper inventory) the action plugin of the same name
    runs the sampling inside the controller's worker, saving a Python start per cluster; other
    connections run this module on the target host.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  agent_url:
    description: Agent HTTP base URL.
    type: str
  agent_username:
    description: Basic-auth user for the agent.
    type: str
  agent_password:
    description: Basic-auth password for the agent.
    type: str
  receiver_urls:
    description: Receivers' HTTP base URLs (port 10902 for Thanos Receive).
    type: list
    elements: str
    default: []
  remote_write_url:
    description: The URL the agent remote-writes to; probed with a TCP connect.
    type: str
  not_before:
    description: Epoch seconds; sleep until then before sampling.
    type: float
  timeout:
    description: Seconds per HTTP request.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Sample the agent and the receivers
  watchkeeper.platform.remote_write_sample:
    agent_url: http://prometheus-agent.monitoring.svc:9090
    receiver_urls: [http://thanos-receive-0.thanos-receive:10902]
    remote_write_url: http://thanos-receive.monitoring.svc:19291/api/v1/receive
  register: first
"""

RETURN = r"""
sampled_at:
  description: Epoch seconds when the sample was taken.
  type: float
  returned: always
agent:
  description: C(url), C(ready), C(detail) and the selected C(samples) of the agent.
  type: dict
  returned: when agent_url is set
receivers:
  description: One entry per receiver, same shape as I(agent).
  type: list
  returned: always
remote_write_error:
  description: Why a TCP connection to the remote-write URL failed, empty when it succeeded.
  type: str
  returned: when remote_write_url is set
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.sampling import (
    ARGUMENT_SPEC,
    sample,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**sample(module.params))


if __name__ == "__main__":
    main()
