#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Diagnose receivers that are down and remediate the known causes."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: thanos_receiver_recover
short_description: Diagnose receivers that are down; restart them, else take them out of the ring
description:
  - Diagnoses every receive pod that is not Ready (phase, restarts, last events, ring
    membership) and every ring endpoint without a Ready pod behind it.
  - Remediates in order, each step verified before the next, stopping as soon as the
    receivers are healthy. A receiver that is not Ready is restarted (its pod deleted, the
    StatefulSet recreates it) and must be Ready within restart_timeout; one that stays down
    is taken out of the ring (the ring over the Ready receivers, proven on each of them), so
    that writes stop being forwarded to it. The ring is never made smaller than the
    replication factor.
  - In check mode it returns the diagnosis and the plan and changes nothing.
  - Takes every option of thanos_hashring for the ring change.
options:
  restart_timeout: {description: Seconds for a restarted receiver to be Ready., type: float, default: 120}
  remove_from_ring: {description: Take receivers that stay down out of the ring., type: bool, default: true}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Bring the receivers back
  watchkeeper.platform.thanos_receiver_recover:
    context: observability
"""

RETURN = r"""
diagnosis: {description: Per receiver not Ready, what was seen., type: dict, returned: always}
actions: {description: What was done, in order., type: list, returned: always}
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring as hr
from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring_apply, kube

ARGUMENT_SPEC = dict(
    hashring_apply.ARGUMENT_SPEC,
    restart_timeout=dict(type="float", default=120.0),
    remove_from_ring=dict(type="bool", default=True),
)


def _endpoint(params, pod):
    return params["endpoint_template"].format(
        pod=pod.metadata.name, ip=pod.status.pod_ip or "", service=params["service"],
        namespace=params["namespace"], port=params["grpc_port"])


def diagnose(client, params):
    """(pods, ring endpoints, {pod: finding}, endpoints without a Ready pod)."""
    ns = params["namespace"]
    sts, pods = kube.statefulset_pods(client, ns, params["statefulset"])
    cm = kube.core(client).read_namespaced_config_map(params["configmap"], ns)
    text = (cm.data or {}).get(params["key"], "")
    try:
        ring = json.loads(text)
        members = [hr.endpoint_address(e) for e in ring[-1].get("endpoints") or []]
    except (ValueError, IndexError, AttributeError):
        members = []
    ready_endpoints = {_endpoint(params, p) for p in pods if kube.is_ready(p)}
    findings = {}
    present = {p.metadata.name for p in pods}
    for i in range(int(sts.spec.replicas or 0)):
        name = "%s-%d" % (params["statefulset"], i)
        if name not in present:
            findings[name] = dict(state="no pod", in_ring=None, restarts=None, events=[])
    for pod in pods:
        if kube.is_ready(pod):
            continue
        status = pod.status.container_statuses[0] if pod.status.container_statuses else None
        events = kube.core(client).list_namespaced_event(
            ns, field_selector="involvedObject.name=%s" % pod.metadata.name).items
        events = sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or ""))
        findings[pod.metadata.name] = dict(
            state="terminating" if pod.metadata.deletion_timestamp else (
                pod.status.phase or "Unknown") + ", not Ready",
            in_ring=_endpoint(params, pod) in members if pod.status.pod_ip else None,
            restarts=status.restart_count if status else 0,
            events=["%s: %s" % (e.reason, (e.message or "")[:160]) for e in events[-3:]])
    stale = [m for m in members if m not in ready_endpoints]
    return pods, members, findings, stale


def run(module):
    params = module.params
    client = kube.connect(params)
    rf = params["replication_factor"]
    pods, members, findings, stale = diagnose(client, params)
    result = dict(changed=False, diagnosis=findings, ring=members,
                  ring_without_ready_pod=stale, actions=[])
    checks = [dict(name="%s Ready" % name, status="fail",
                   evidence="%s; restarts %s; in ring %s; %s" % (
                       f["state"], f["restarts"], f["in_ring"], " | ".join(f["events"]) or
                       "no events"),
                   hint="restart it; if it stays down, take it out of the ring")
              for name, f in sorted(findings.items())]
    if stale:  # the ring still sends writes there (also to a member whose pod is gone)
        checks.append(dict(name="ring endpoints without a Ready pod", status="fail",
                           evidence=", ".join(stale),
                           hint="take them out of the ring (the ring over the Ready receivers)"))
    result["checks"] = checks
    if not findings and not stale:
        result["msg"] = "all %d receivers Ready and in the ring: nothing to do" % len(pods)
        return result
    plan = ["restart %s (delete the pod), wait Ready %.0f s" % (n, params["restart_timeout"])
            for n in sorted(findings)]
    if params["remove_from_ring"]:
        plan.append("if still down: ring over the Ready receivers only, proven on each")
    result["plan"] = plan
    if module.check_mode:
        result.update(changed=True, msg="diagnosis: %s; would: %s" % (
            "; ".join("%s %s" % (n, f["state"]) for n, f in sorted(findings.items()))
            or "ring has endpoints without a Ready pod: %s" % ", ".join(stale),
            " | ".join(plan)))
        return result
    from kubernetes.client.exceptions import ApiException

    ns = params["namespace"]
    for name in sorted(findings):
        began = time.monotonic()
        try:
            kube.core(client).delete_namespaced_pod(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise kube.api_error(exc, "delete pod %s/%s" % (ns, name)) from exc

        def ready(name=name):
            _, current = kube.statefulset_pods(client, ns, params["statefulset"])
            pod = next((p for p in current if p.metadata.name == name), None)
            return pod is not None and kube.is_ready(pod), None

        done, _, _waited = kube.wait_for("ready", ready, params["restart_timeout"], 2)
        result["changed"] = True
        action = dict(action="restart", pod=name, ready=done,
                      seconds=round(time.monotonic() - began, 1))
        if not done:
            try:
                old = kube.core(client).read_namespaced_pod(name, ns)
            except ApiException:
                old = None
            if old is not None and old.metadata.deletion_timestamp is not None:
                action["note"] = (
                    "the old pod is still Terminating: its process ignored SIGTERM (a hung"
                    " receiver); it is killed when its %ss grace period ends, or now with"
                    " `kubectl -n %s delete pod %s --grace-period=0 --force`" % (
                        old.metadata.deletion_grace_period_seconds, ns, name))
        result["actions"].append(action)
    pods, members, findings, stale = diagnose(client, params)
    if (findings or stale) and params["remove_from_ring"]:
        ready = [p.metadata.name for p in pods if kube.is_ready(p)]
        if len(ready) < rf:
            raise kube.KubeFailure(
                "only %d receiver(s) Ready (%s), fewer than the replication factor %d: the"
                " ring is left as it is (shrinking it would not restore writes)" % (
                    len(ready), ", ".join(ready) or "none", rf),
                "bring receivers back (read the diagnosis), or scale", diagnosis=findings,
                actions=result["actions"], checks=checks)
        began = time.monotonic()
        ring = hashring_apply.apply_ring(client, dict(params, members=ready, converge_pods=None,
                                                      content=None), False)
        result["actions"].append(dict(action="ring", members=ready, changed=ring["changed"],
                                      seconds=round(time.monotonic() - began, 1)))
        result["changed"] = result["changed"] or ring["changed"]
    result["after"] = dict(not_ready=sorted(findings), ring_without_ready_pod=stale)
    result["msg"] = "; ".join(
        "%s %s%s%s" % (a["action"], a.get("pod") or ",".join(a.get("members", [])),
                       " -> Ready" if a.get("ready") else (" -> still down" if a["action"] ==
                                                            "restart" else " (proven)"),
                       " (%s)" % a["note"] if a.get("note") else "")
        for a in result["actions"])
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
