#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Restart a Prometheus Agent pod and verify the WAL replay and the remote-write catch-up."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: prometheus_agent_restart
short_description: Restart a Prometheus Agent and prove its WAL replayed and remote write caught up
description:
  - Deletes the agent pod (its StatefulSet recreates it, with the ConfigMap as it is now),
    waits for the new pod to be Ready, proves a new process replayed the WAL
    (process_start_time_seconds, prometheus_agent_data_replay_duration_seconds, active series,
    the log's replay lines), then waits until every remote-write queue has sent samples newer
    than the restart with a lag at most I(lag_threshold) seconds.
  - Samples the agent had not sent before the restart are not resent (the WAL watcher starts
    at the restart); the result says so.
  - In check mode the delete is a server-side dry run and the result says what would happen.
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
  log_path: {description: "The agent's log file; fields {namespace} and {pod}.", type: str}
  log_tail_bytes: {description: Bytes of the log read at most., type: int, default: 4194304}
  timeout: {description: Seconds per request., type: float, default: 5}
  ready_timeout: {description: Seconds for the new pod to be Ready (the runbook's ready_timeout param)., type: float, required: true}
  catchup_timeout: {description: Seconds for remote write to catch up., type: float, default: 180}
  lag_threshold: {description: Remote-write lag (seconds) that counts as caught up., type: float, default: 120}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Restart the agent and prove it delivers again
  watchkeeper.platform.prometheus_agent_restart:
    context: k8s-cluster-01
    namespace: monitoring
    agent_url: http://prometheus-agent.monitoring.svc:9090
    lag_threshold: 120
"""

RETURN = r"""
checks: {description: pod recreated, WAL replayed, remote write caught up, agent log since the restart., type: list, returned: always}
restart_seconds: {description: Seconds from the delete to the new pod Ready., type: float, returned: when restarted}
catchup_seconds: {description: Seconds from Ready to the lag under the threshold., type: float, returned: when restarted}
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

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    ready_timeout=dict(type="float", required=True),
    catchup_timeout=dict(type="float", default=180.0),
    lag_threshold=dict(type="float", default=120.0),
    **agent_read.AGENT_SPEC
)

NOT_RESENT = ("samples not sent before the restart are not resent (the WAL watcher starts at"
              " the restart)")


def _lag_text(samples):
    positions = agent_health.queue_positions(samples)
    return ", ".join("%s lag %s" % (r or u, "n/a" if lag is None else "%.0f s" % lag)
                     for (r, u), (lag, _) in sorted(positions.items())) or "no queue"


def restart(client, params, check_mode):
    from kubernetes.client.exceptions import ApiException

    ns = params["namespace"]
    sts, pod = agent_read.agent_pod(client, params)
    name, uid = pod.metadata.name, pod.metadata.uid
    before = agent_read.sample(client, params, name, agent_health.METRICS)
    what = "delete pod %s/%s" % (ns, name)
    try:
        kube.core(client).delete_namespaced_pod(name, ns, dry_run="All" if check_mode else None)
    except ApiException as exc:
        raise kube.api_error(exc, what) from exc
    plan = ("%s (uid %s); StatefulSet %s recreates it; then up to %.0f s for Ready and the WAL"
            " replay, up to %.0f s for every queue's lag <= %.0f s"
            % (what, uid, sts.metadata.name, params["ready_timeout"], params["catchup_timeout"],
               params["lag_threshold"]))
    if check_mode:
        return dict(changed=True, checks=[], msg="would %s; now: %s, %s" % (
            plan, "Ready" if before["ready"] else "not Ready (%s)" % before["detail"],
            _lag_text(before["samples"])))
    restarted_at = time.time()
    began = time.monotonic()

    def recreated():
        try:
            current = kube.core(client).read_namespaced_pod(name, ns)
        except ApiException as exc:
            return False, "pod absent (%s)" % exc.status
        if current.metadata.uid == uid:
            return False, "old pod still terminating"
        return kube.is_ready(current), "new pod %s, Ready %s" % (current.metadata.uid,
                                                              kube.is_ready(current))

    done, detail, waited = kube.wait_for("the recreated pod to be Ready", recreated,
                                         params["ready_timeout"], every=1.0)
    checks = []
    if not done:
        checks.append({"name": "pod recreated", "status": "fail",
                       "evidence": "not Ready after %.0f s: %s" % (waited, detail),
                       "hint": "read the agent's log and the pod's events"})
        return dict(changed=True, failed=True, checks=checks,
                    msg="%s: the new pod was not Ready after %.0f s (%s)" % (what, waited,
                                                                           detail))
    restart_seconds = time.monotonic() - began
    checks.append({"name": "pod recreated", "status": "ok",
                   "evidence": "%s Ready %.1f s after the delete (%s)" % (name, restart_seconds,
                                                                       detail), "hint": ""})
    after = agent_read.sample(client, params, name, agent_health.METRICS)
    state = {"samples": after["samples"]}

    def delivering():
        state["samples"] = agent_read.sample(client, params, name,
                                             agent_health.METRICS)["samples"]
        return agent_health.caught_up(state["samples"], restarted_at, params["lag_threshold"])

    ready_at = time.monotonic()
    done, detail, waited = kube.wait_for("remote write to catch up", delivering,
                                         params["catchup_timeout"], every=2.0)
    catchup_seconds = time.monotonic() - ready_at
    lines, source, error = agent_read.log_lines(client, params, name, time.time() - restarted_at)
    # The old process's shutdown lines belong to the restart, not to the new process: judge
    # the new process from its start, and report what the old one dropped on the way out.
    new_start = (agent_logs.process_started(lines, since=restarted_at - 1)
                 or maximum(after["samples"], agent_health.START_TIME) or restarted_at)
    summary = agent_logs.summarize(lines, since=new_start)
    log_check = agent_logs.check_of(summary, source, time.time() - new_start) if not error \
        else {"name": "agent log", "status": "warn", "evidence": error, "hint": ""}
    log_check["name"] = "agent log since the restart"
    shutdown = agent_logs.summarize(lines, since=restarted_at - 1, until=new_start)
    dropped = shutdown["classes"].get("unsent_at_shutdown")
    if dropped:
        checks[0]["evidence"] += ("; the old process dropped %d queued sample(s) it could not"
                                  " send on shutdown" % dropped["samples"])
    replay = error if error else agent_logs.replay_summary(lines, since=restarted_at - 1)
    checks.append(agent_health.replay_check(before["samples"], after["samples"], replay))
    if done:
        checks.append({"name": "remote write caught up", "status": "ok",
                       "evidence": "%s, %.1f s after Ready; %s" % (detail, catchup_seconds,
                                                                   NOT_RESENT), "hint": ""})
    else:
        checks.append({"name": "remote write caught up", "status": "fail",
                       "evidence": "not within %.0f s: %s" % (waited, detail),
                       "hint": "the agent does not deliver: the log check says why (a wrong"
                       " remote_write url, receivers down); fix and restart again"})
    checks.append(log_check)
    result = dict(changed=True, checks=checks, restart_seconds=round(restart_seconds, 1),
                  catchup_seconds=round(catchup_seconds, 1), log=summary)
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        result["failed"] = True
        result["msg"] = "restarted, but " + "; ".join(
            "%s: %s" % (c["name"], c["evidence"][:600]) for c in failed)
    else:
        result["msg"] = ("restarted %s/%s: Ready in %.1f s, WAL replayed, remote write caught"
                         " up in %.1f s (%s)" % (ns, name, restart_seconds, catchup_seconds,
                                                 detail))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = restart(kube.connect(module.params), module.params, module.check_mode)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
