#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Re-point a Prometheus Agent's remote write (its ConfigMap) to the inventory's URL."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: agent_remote_write_repoint
short_description: Put the inventory's remote-write URL back into the agent's ConfigMap
description:
  - Reads the agent's ConfigMap (the I(configmap) option, else the agent pod's configMap volume
    holding a remote_write section) and replaces each remote_write url other than I(url)
    that does not answer (refused, DNS, TLS, timeout, 4xx; a receive endpoint answers 405 to
    a GET); when none is failing and there is one queue, its url. Only the URL text changes;
    the rest of the file keeps its formatting.
  - The agent reads the new file only when restarted (prometheus_agent_restart).
  - C(changed) compares the ConfigMap before and after; check mode is a server-side dry run;
    C(diff) shows the file when asked.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the agent., type: str, default: monitoring}
  statefulset: {description: The agent's StatefulSet., type: str, default: prometheus-agent}
  pod: {description: The agent pod (default the StatefulSet's first)., type: str}
  configmap: {description: The agent's ConfigMap., type: str}
  configmap_key: {description: The key holding prometheus.yml., type: str}
  url: {description: The remote-write URL the agent must use (the inventory's)., type: str, required: true}
  timeout: {description: Seconds per probe., type: float, default: 5}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Re-point the agent
  watchkeeper.platform.agent_remote_write_repoint:
    context: k8s-cluster-01
    namespace: monitoring
    url: http://thanos-receive.monitoring.svc:19291/api/v1/receive
"""

RETURN = r"""
replaced: {description: The URLs replaced by I(url)., type: list, returned: always}
configmap: {description: namespace/name:key of the file changed., type: str, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_read,
    diagnose_probe,
    kube,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    statefulset=dict(type="str", default="prometheus-agent"),
    pod=dict(type="str"),
    configmap=dict(type="str"),
    configmap_key=dict(type="str"),
    url=dict(type="str", required=True),
    timeout=dict(type="float", default=5.0),
)


def plan(text, url, timeout):
    """(new text, replaced urls) for a prometheus.yml."""
    queues = diagnose_probe.urls_of(diagnose_probe.yaml_load(text))
    others = [u for u in queues if u != url]
    failing = [u for u in others if diagnose_probe.probe(u, timeout)["error"]]
    if not failing and len(queues) == 1 and others:
        failing = others
    new = text
    for old in failing:
        new = new.replace(old, url)
    if sorted(diagnose_probe.urls_of(diagnose_probe.yaml_load(new))) != sorted(
            [url if u in failing else u for u in queues]):
        raise kube.KubeFailure("replacing %s by %s changed more than the remote_write urls"
                               % (failing, url), "edit the agent's ConfigMap by hand")
    return new, failing


def repoint(client, params, check_mode):
    from kubernetes.client.exceptions import ApiException

    ns = params["namespace"]
    _, pod = agent_read.agent_pod(client, params)
    name, key, text = diagnose_probe.agent_config_map(client, params, pod)
    if name is None:
        raise kube.KubeFailure(text, "set the configmap option")
    new, replaced = plan(text, params["url"], params["timeout"])
    where = "%s/%s:%s" % (ns, name, key)
    result = dict(changed=new != text, replaced=replaced, configmap=where)
    if new == text:
        result["msg"] = "%s already writes to %s (or to URLs that answer): nothing to change" % (
            where, params["url"])
        return result
    try:
        kube.core(client).patch_namespaced_config_map(
            name, ns, {"data": {key: new}}, dry_run="All" if check_mode else None)
    except ApiException as exc:
        raise kube.api_error(exc, "patch ConfigMap %s/%s" % (ns, name)) from exc
    result["msg"] = "%s %s: remote_write url %s -> %s" % (
        "would patch" if check_mode else "patched", where, ", ".join(replaced), params["url"])
    result["diff"] = {"before": text, "after": new, "before_header": where,
                      "after_header": where}
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = repoint(kube.connect(module.params), module.params, module.check_mode)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
