#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Judge Thanos Receive health: error ratios, ring membership, write quorum, uploads."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: thanos_receiver_health
short_description: Thanos Receive health from the receivers' own metrics and the hashring
description:
  - Reads the receive StatefulSet's pods and the hashring ConfigMap, and each receiver's
    C(/metrics) twice, I(rate_window) seconds apart, through the API server's pod proxy.
  - Returns checks, each ok, warn or fail with evidence and a hint, for ring membership
    (Ready pods in no ring, ring endpoints without a Ready pod), write quorum per ring (how
    many receivers may fail before writes lose quorum, from ring size, replication factor and
    the Thanos version), per receiver forward / replication / receive 5xx / 4xx error ratios
    over the window, and per receiver upload recency.
  - Read-only; runs the same in check mode. Fails when a check fails.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the receivers., type: str, default: monitoring}
  statefulset: {description: The receive StatefulSet., type: str, default: thanos-receive}
  service: {description: The receivers' headless Service., type: str, default: thanos-receive}
  configmap: {description: The hashring ConfigMap (wk_hashring_configmap)., type: str, required: true}
  key: {description: The ConfigMap key holding the file., type: str, default: hashrings.json}
  endpoint_template:
    description: How a pod becomes a ring endpoint; fields pod, ip, service, namespace, port.
    type: str
    default: "{pod}.{service}.{namespace}.svc.cluster.local:{port}"
  grpc_port: {description: The receivers' gRPC port (ring endpoints)., type: int, default: 10901}
  http_port: {description: The receivers' HTTP port (metrics)., type: int, default: 10902}
  replication_factor: {description: The receivers' replication factor., type: int, default: 2}
  rate_window: {description: Seconds between the two samples., type: float, default: 5}
  failed_ratio: {description: Error ratio above which a receiver fails., type: float, default: 0.01}
  upload_max_age: {description: Seconds without a successful upload before failing., type: float, default: 10800}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Receiver health
  watchkeeper.platform.thanos_receiver_health:
    context: observability
    namespace: monitoring
    replication_factor: 2
"""

RETURN = r"""
checks: {description: C(name), C(status), C(evidence), C(hint) per check., type: list, returned: always}
quorum: {description: Per ring the quorum arithmetic (ring_size, quorum, tolerated, down, remaining, sentence)., type: dict, returned: always}
pods: {description: Each receive pod with its ring endpoint and readiness., type: list, returned: always}
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import kube, promtext
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    receiver_health as rh,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    statefulset=dict(type="str", default="thanos-receive"),
    service=dict(type="str", default="thanos-receive"),
    configmap=dict(type="str", required=True),
    key=dict(type="str", default="hashrings.json"),
    endpoint_template=dict(type="str",
                           default="{pod}.{service}.{namespace}.svc.cluster.local:{port}"),
    grpc_port=dict(type="int", default=10901),
    http_port=dict(type="int", default=10902),
    replication_factor=dict(type="int", default=2),
    rate_window=dict(type="float", default=5.0),
    failed_ratio=dict(type="float", default=0.01),
    upload_max_age=dict(type="float", default=rh.DEFAULT_UPLOAD_MAX_AGE),
)


def _pods(client, params):
    _, pods = kube.statefulset_pods(client, params["namespace"], params["statefulset"])
    out = []
    for pod in pods:
        ip = pod.status.pod_ip or "" if pod.status else ""
        endpoint = params["endpoint_template"].format(
            pod=pod.metadata.name, ip=ip, service=params["service"],
            namespace=params["namespace"], port=params["grpc_port"])
        out.append({"name": pod.metadata.name, "endpoint": endpoint if ip or "{ip}" not in
                    params["endpoint_template"] else "", "ready": kube.is_ready(pod),
                    "error": ""})
    return out


def _rings(client, params):
    from kubernetes.client.exceptions import ApiException

    what = "read ConfigMap %s/%s" % (params["namespace"], params["configmap"])
    try:
        cm = kube.core(client).read_namespaced_config_map(params["configmap"],
                                                          params["namespace"])
    except ApiException as exc:
        raise kube.api_error(exc, what) from exc
    text = (cm.data or {}).get(params["key"])
    if text is None:
        raise kube.KubeFailure("%s: no key %s" % (what, params["key"]),
                               "set the ConfigMap key the receivers read")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise kube.KubeFailure("%s: %s does not parse as JSON: %s" % (what, params["key"], exc),
                               "run the hashring runbook to write a valid ring") from exc


def _sample(client, params, pods):
    out = {}
    for pod in pods:
        if not pod["ready"]:
            continue
        try:
            text = kube.proxy_get(client, params["namespace"], pod["name"], params["http_port"],
                                  "metrics")
            out[pod["name"]] = promtext.parse(text, rh.METRICS)
        except Exception as exc:  # ApiException, timeouts, unparseable text: say which pod
            pod["error"] = "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:200])
    return out


def health(client, params):
    rings = _rings(client, params)
    pods = _pods(client, params)
    first = _sample(client, params, pods)
    time.sleep(max(0.0, float(params["rate_window"])))
    second = _sample(client, params, pods)
    samples = {name: (first.get(name, {}), second[name]) for name in second}
    checks = rh.evaluate(rings, pods, samples, params["replication_factor"], time.time(),
                         params["failed_ratio"], params["upload_max_age"])
    quorum = {c["name"][len("write quorum "):]: c.pop("quorum") for c in checks
              if "quorum" in c}
    failed = [c for c in checks if c["status"] == "fail"]
    result = dict(changed=False, checks=checks, quorum=quorum, pods=pods)
    sentences = "; ".join(q["sentence"] for q in quorum.values())
    if failed:
        result["failed"] = True
        result["msg"] = "; ".join("%s: %s" % (c["name"], c["evidence"]) for c in failed)
    else:
        warned = sum(1 for c in checks if c["status"] == "warn")
        result["msg"] = "%d check(s) ok, %d warning(s); %s" % (
            len(checks) - warned, warned, sentences)
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
