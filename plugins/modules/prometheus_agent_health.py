#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Judge a Prometheus Agent: readiness, remote-write queues, WAL, classified log errors."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: prometheus_agent_health
short_description: A Prometheus Agent's remote-write queues, WAL and log errors, as checks
description:
  - Samples the agent's C(/-/ready) and C(/metrics) twice, I(rate_window) seconds apart (from
    I(agent_url), else through the API server's pod proxy), and judges each remote-write
    queue (sent, failed, retried, dropped, pending, shards vs desired vs max, lag).
  - The WAL, from prometheus_tsdb_wal_storage_size_bytes where exported, else the size of
    its directory on the pod's hostPath / local PersistentVolume when readable here; growth
    over the window, segment, samples appended, failed writes and corruptions.
  - The log of the last I(log_window) seconds (the file I(log_path), else the pod log from
    the Kubernetes API), its remote-write error lines classified (4xx dropped, 5xx retried,
    connection refused, DNS, out of order, out of bounds, timeout) with counts and examples.
  - Read-only; runs the same in check mode. Fails when a check fails.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the agent., type: str, default: monitoring}
  statefulset: {description: The agent's StatefulSet., type: str, default: prometheus-agent}
  pod: {description: The agent pod (default the StatefulSet's first)., type: str}
  agent_url: {description: Agent HTTP base URL (default the pod proxy)., type: str}
  agent_username: {description: Basic-auth user for the agent., type: str}
  agent_password: {description: Basic-auth password for the agent., type: str}
  http_port: {description: The agent's HTTP port (pod proxy)., type: int, default: 9090}
  log_path:
    description: The agent's log file; fields {namespace} and {pod}. Default the pod log.
    type: str
  log_tail_bytes: {description: Bytes of the log read at most., type: int, default: 4194304}
  log_window: {description: Seconds of log lines classified., type: float, default: 600}
  timeout: {description: Seconds per request., type: float, default: 5}
  rate_window: {description: Seconds between the two samples., type: float, default: 5}
  thresholds:
    description: C(lag_seconds), C(failed_ratio), C(pending_samples).
    type: dict
    default: {}
  wal_max_bytes: {description: WAL size above which the WAL check warns., type: int, default: 4294967296}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Agent health
  watchkeeper.platform.prometheus_agent_health:
    context: k8s-cluster-01
    namespace: monitoring
    agent_url: http://prometheus-agent.monitoring.svc:9090
    log_path: /var/log/pods/{namespace}_{pod}.log
"""

RETURN = r"""
checks: {description: C(name), C(status), C(evidence), C(hint) per check., type: list, returned: always}
log: {description: The log summary (lines considered, classes with count and example)., type: dict, returned: always}
queues: {description: Per remote-write queue its rates, pending, lag and shards., type: list, returned: always}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_health,
    agent_logs,
    agent_read,
    kube,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import maximum
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    evaluate_agent,
    queue_stats,
    queues,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    log_window=dict(type="float", default=600.0),
    rate_window=dict(type="float", default=5.0),
    thresholds=dict(type="dict", default={}),
    wal_max_bytes=dict(type="int", default=agent_health.DEFAULT_WAL_MAX_BYTES),
    **agent_read.AGENT_SPEC
)


def _lag_since_start(checks, stats, samples):
    """A queue that never sent has no sent timestamp to subtract: its lag is at least the
    agent's uptime; say that number instead of n/a."""
    started = maximum(samples, agent_health.START_TIME)
    if not started:
        return
    for queue in stats:
        if not queue["never_sent"]:
            continue
        label = "remote write %s" % (queue["remote_name"] or queue["url"])
        for item in checks:
            if item["name"] == label:
                item["evidence"] += ("; lag at least %.0f s: nothing sent to %s since the agent"
                                     " started" % (time.time() - started, queue["url"]))


def health(client, params):
    _, pod = agent_read.agent_pod(client, params)
    name = pod.metadata.name
    wal, wal_why = agent_read.wal_dir(client, params, pod)
    first = agent_read.sample(client, params, name, agent_health.METRICS)
    first["sampled_at"] = time.time()
    size_before = agent_read.wal_bytes(wal)
    time.sleep(max(0.0, float(params["rate_window"])))
    second = agent_read.sample(client, params, name, agent_health.METRICS)
    size_after = agent_read.wal_bytes(wal)
    elapsed = time.time() - first["sampled_at"]
    checks = evaluate_agent(first, second, elapsed, params["thresholds"])
    if second["ready"]:
        sizes = (size_before, size_after, wal) if wal else None
        wal_check = agent_health.evaluate_wal(first["samples"], second["samples"], elapsed,
                                              sizes, params["wal_max_bytes"])
        if wal is None:
            wal_check["evidence"] += " (%s)" % wal_why
        checks.append(wal_check)
    window = float(params["log_window"])
    lines, source, error = agent_read.log_lines(client, params, name, window)
    summary = agent_logs.summarize(lines, since=time.time() - window)
    if error:
        checks.append({"name": "agent log", "status": "warn", "evidence": error,
                       "hint": "set wk_agent_log_path to the agent's log file, or grant"
                       " pods/log get to read it through the Kubernetes API"})
    else:
        checks.append(agent_logs.check_of(summary, source, window))
    stats = [queue_stats(first["samples"], second["samples"], elapsed, r, u)
             for r, u in queues(second["samples"])]
    _lag_since_start(checks, stats, second["samples"])
    result = dict(changed=False, checks=checks, log=summary, queues=stats, pod=name)
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        result["failed"] = True
        result["msg"] = "; ".join("%s: %s" % (c["name"], c["evidence"][:600]) for c in failed)
    else:
        warned = sum(1 for c in checks if c["status"] == "warn")
        result["msg"] = "%d check(s) ok, %d warning(s)" % (len(checks) - warned, warned)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = health(kube.connect(module.params), module.params)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
