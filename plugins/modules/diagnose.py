#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Diagnostics: the most likely cause first, with evidence, then the other findings."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: diagnose
short_description: Troubleshooting diagnostics that name the most likely cause first
description:
  - I(topic=remote_write) (a workload cluster's agent) reads the agent's readiness, its running
    configuration (C(/api/v1/status/config)), its ConfigMap, each remote-write URL it uses
    and the inventory's (HTTP GET classified; refused, DNS, TLS, timeout, 4xx, 5xx; a receive
    endpoint answers 405), its queue metrics twice (lag, never sent, dropped, shards at max)
    and its log since it started (classified by agent_logs).
  - I(topic=receiver_connectivity) reads each receiver's C(/-/ready), probes its remote-write
    and gRPC ports from here and counts forward errors between receivers over I(rate_window).
  - I(topic=missing_metrics) asks Thanos Query, per expected job of the cluster, for the newest
    C(up) sample and the last time it was 1; which job is missing and since when.
  - I(topic=network) builds a reachability matrix, each remote-write URL (TCP then HTTP from
    here), each receiver gRPC endpoint (TCP from here, and in Thanos Query's C(/api/v1/stores)).
  - I(topic=disk_space) measures each data volume (I(data_volume_paths), then the namespace's
    hostPath / local PersistentVolumes) twice over I(rate_window); reports usage against the
    checklist's thresholds, growth and time to full, what fills it (WAL, head chunks, blocks,
    blocks the Thanos shipper has not uploaded, other files) and the cause (diagnose_disk).
  - Every finding is a check; they come ranked, most likely cause first; C(msg) starts with
    C(most likely). Read-only; runs the same in check mode. Fails when a finding fails, unless
    I(fail_on_problem=false).
options:
  topic:
    description: Which diagnostic.
    type: str
    required: true
    choices: [remote_write, receiver_connectivity, missing_metrics, network, disk_space]
  data_volume_paths: {description: Data volume directories measured before the discovered ones., type: list, elements: str, default: []}
  thresholds: {description: "Checklist thresholds (disk_warn_percent, disk_fail_percent).", type: dict, default: {}}
  upload_grace: {description: Seconds after a block's end within which the shipper must have uploaded it., type: float, default: 1800}
  fail_on_problem: {description: Fail the task when a finding fails., type: bool, default: true}
  wait:
    description: Seconds to repeat the diagnostic until no finding fails (a recovery's
      verification); 0 runs it once.
    type: float
    default: 0
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the agent., type: str, default: monitoring}
  statefulset: {description: The agent's StatefulSet., type: str, default: prometheus-agent}
  pod: {description: The agent pod (default the StatefulSet's first)., type: str}
  agent_url: {description: Agent HTTP base URL (default the pod proxy)., type: str}
  agent_username: {description: Basic-auth user for the agent., type: str}
  agent_password: {description: Basic-auth password for the agent., type: str}
  http_port: {description: The agent's HTTP port (pod proxy)., type: int, default: 9090}
  log_path: {description: "The agent's log file; fields {namespace} and {pod}.", type: str}
  log_tail_bytes: {description: Bytes of the log read at most., type: int, default: 4194304}
  timeout: {description: Seconds per request., type: float, default: 5}
  cluster: {description: The cluster's C(cluster) external label., type: str}
  remote_write_url: {description: The inventory's remote-write URL for this cluster., type: str}
  receiver_urls: {description: Receivers' HTTP base URLs., type: list, elements: str, default: []}
  grpc_endpoints: {description: Receivers' gRPC host:port., type: list, elements: str, default: []}
  remote_write_port: {description: Receivers' remote-write port., type: int, default: 19291}
  query_url: {description: Thanos Query HTTP base URL., type: str}
  expected_jobs: {description: Jobs every cluster must deliver., type: list, elements: str, default: [prometheus-agent]}
  lookback: {description: Seconds Query looks back for a missing job's last sample., type: float, default: 3600}
  stale_seconds: {description: A job whose newest sample is older is missing., type: float, default: 120}
  lag_threshold: {description: Remote-write lag (seconds) above which a queue is behind., type: float, default: 120}
  send_threshold: {description: Mean seconds per remote-write request above which a queue is slow (a slow link or slow receivers)., type: float, default: 1}
  rate_window: {description: Seconds between two metric samples., type: float, default: 5}
  configmap: {description: The agent's ConfigMap (default the pod's configMap volume)., type: str}
  configmap_key: {description: The key holding prometheus.yml., type: str}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Why does the agent not deliver?
  watchkeeper.platform.diagnose:
    topic: remote_write
    context: k8s-cluster-01
    namespace: monitoring
    agent_url: http://prometheus-agent.monitoring.svc:9090
    remote_write_url: http://thanos-receive.monitoring.svc:19291/api/v1/receive
"""

RETURN = r"""
checks: {description: The findings, most likely cause first (name, status, evidence, hint, cause, score, remedy)., type: list, returned: always}
most_likely: {description: The top finding that is not ok, or null., type: dict, returned: always}
remedies: {description: What an emergency runbook may do (restart, repoint, remote_write)., type: list, returned: always}
matrix: {description: Reachability rows (source, target, result) for topic network., type: list, returned: when topic is network}
facts: {description: What remote_write read (pod, ConfigMap, URLs, probes)., type: dict, returned: when topic is remote_write}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_read,
    checklist_probe,
    diagnose,
    diagnose_disk,
    diagnose_probe,
    kube,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    topic=dict(type="str", required=True,
               choices=["remote_write", "receiver_connectivity", "missing_metrics", "network",
                        "disk_space"]),
    data_volume_paths=dict(type="list", elements="str", default=[]),
    thresholds=dict(type="dict", default={}),
    upload_grace=dict(type="float", default=1800.0),
    fail_on_problem=dict(type="bool", default=True),
    wait=dict(type="float", default=0.0),
    **dict(diagnose_probe.DIAGNOSE_SPEC, **agent_read.AGENT_SPEC)
)


def diagnosed(params):
    """The diagnostic, repeated every few seconds until no finding fails or `wait` passed."""
    state = {}

    def clean():
        state["result"] = run(params)
        return not any(f["status"] == "fail" for f in state["result"]["checks"]), ""

    _, _, waited = kube.wait_for("no failing finding", clean, float(params["wait"]), every=5.0)
    result = state["result"]
    if params["wait"]:
        result["waited_seconds"] = round(waited, 1)
    return result


def run(params):
    topic = params["topic"]
    result = dict(changed=False)
    if topic == "remote_write":
        findings, facts = diagnose_probe.remote_write(kube.connect(params), params)
        result["facts"] = facts
        message = diagnose.summary(findings, "the agent delivers")
    elif topic == "receiver_connectivity":
        findings = diagnose_probe.receiver_connectivity(params)
        message = diagnose.summary(findings, "every receiver Ready and reachable")
    elif topic == "disk_space":
        findings = diagnose.rank(diagnose_disk.disk_space(params, checklist_probe.Kube(params)))
        message = diagnose.summary(findings, "every data volume has room")
    elif topic == "missing_metrics":
        findings = diagnose_probe.missing_metrics(params)
        message = diagnose.summary(findings, "every expected job is fresh in Query")
    else:
        used = None
        if params.get("agent_url"):  # the URLs the agent really uses, besides the inventory's
            config, _ = diagnose_probe.loaded_config(params, None, None)
            used = diagnose_probe.urls_of(config) if config else None
        findings, rows = diagnose_probe.network(params, used)
        result["matrix"] = [list(r) for r in rows]
        message = "%s\n%s" % (diagnose.summary(findings, "every endpoint reachable"),
                              diagnose.matrix_text(rows))
    result.update(checks=findings, msg=message, most_likely=diagnose.most_likely(findings),
                  remedies=diagnose.remedies(findings))
    if params["fail_on_problem"] and any(f["status"] == "fail" for f in findings):
        result["failed"] = True
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = diagnosed(module.params)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
