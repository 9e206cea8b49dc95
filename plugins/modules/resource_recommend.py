#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Recommend requests and limits for a workload from its observed usage."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: resource_recommend
short_description: Requests and limits from observed usage, as a manifest diff
description:
  - Queries Thanos Query for the workload's memory and CPU usage over a window (the busiest
    pod's 95th percentile and peak), recommends requests and limits (see
    module_utils/resources.py for the rules), and returns them with the current ones, a
    strategic-merge patch and a unified diff of the container's resources. Changes nothing.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context., type: str}
  namespace: {description: Namespace of the workload., type: str, default: monitoring}
  kind: {description: Workload kind., type: str, choices: [StatefulSet, Deployment], default: StatefulSet}
  name: {description: Workload name., type: str, required: true}
  container: {description: Container name (default the first)., type: str}
  cluster: {description: The cluster's `cluster` label value., type: str, default: ""}
  query_url: {description: Thanos Query URL., type: str, required: true}
  window: {description: PromQL duration of the usage window., type: str, default: 1h}
  memory_query: {description: "PromQL of the pods' memory in bytes; fields namespace, name, container, cluster.", type: str}
  cpu_query: {description: "PromQL of the pods' CPU in cores; same fields.", type: str}
  headroom: {description: Factor over the 95th percentile for requests., type: float, default: 1.2}
  limit_factor: {description: Factor over the peak for the memory limit., type: float, default: 1.5}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Recommend resources for the agent
  watchkeeper.platform.resource_recommend:
    context: k8s-cluster-01
    namespace: monitoring
    name: prometheus-agent
    query_url: http://thanos-query.monitoring.svc:10902
"""

RETURN = r"""
current: {description: The container's resources now., type: dict, returned: always}
recommended: {description: The recommendation., type: dict, returned: always}
patch: {description: Strategic-merge patch for the workload (YAML)., type: str, returned: always}
usage: {description: Observed p95 and peak of memory (bytes) and CPU (cores)., type: dict, returned: always}
"""

import difflib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import kube, promhttp
from ansible_collections.watchkeeper.platform.plugins.module_utils import resources as res

MEMORY = ('container_memory_working_set_bytes{namespace="{namespace}",pod=~"{name}-.*",'
          'container="{container}"}')
CPU = ('rate(container_cpu_usage_seconds_total{namespace="{namespace}",pod=~"{name}-.*",'
       'container="{container}"}[5m])')

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    kind=dict(type="str", choices=["StatefulSet", "Deployment"], default="StatefulSet"),
    name=dict(type="str", required=True),
    container=dict(type="str"),
    cluster=dict(type="str", default=""),
    query_url=dict(type="str", required=True),
    window=dict(type="str", default="1h"),
    memory_query=dict(type="str"),
    cpu_query=dict(type="str"),
    headroom=dict(type="float", default=1.2),
    limit_factor=dict(type="float", default=1.5),
)


def _fill(template, fields):
    out = template
    for key, value in fields.items():
        out = out.replace("{%s}" % key, value)
    return out


def _scalar(params, promql):
    rows, error = promhttp.query(params["query_url"], promql, timeout=30)
    if error:
        raise kube.KubeFailure("Query %s: %s (query: %s)" % (params["query_url"], error, promql),
                               "check wk_query_url and wk_usage_*_query")
    if not rows:
        raise kube.KubeFailure("no usage data in the window for: %s" % promql,
                               "the workload has no samples there: check the name, the window,"
                               " or set wk_usage_memory_query / wk_usage_cpu_query")
    return max(r["value"] for r in rows)


def run(module):
    import yaml

    params = module.params
    client = kube.connect(params)
    from kubernetes.client.exceptions import ApiException

    read = (kube.apps(client).read_namespaced_stateful_set if params["kind"] == "StatefulSet"
            else kube.apps(client).read_namespaced_deployment)
    try:
        workload = read(params["name"], params["namespace"])
    except (ApiException, OSError) as exc:
        raise kube.api_error(exc, "read %s %s/%s" % (params["kind"], params["namespace"],
                                                   params["name"])) from exc
    containers = workload.spec.template.spec.containers
    container = next((c for c in containers if c.name == params.get("container")),
                     None) if params.get("container") else containers[0]
    if container is None:
        raise kube.KubeFailure("%s has no container %s" % (params["name"], params["container"]),
                               "containers: %s" % ", ".join(c.name for c in containers))
    fields = dict(namespace=params["namespace"], name=params["name"], container=container.name,
                  cluster=params["cluster"])
    memory = _fill(params.get("memory_query") or MEMORY, fields)
    cpu = _fill(params.get("cpu_query") or CPU, fields)
    window = params["window"]
    usage = dict(
        memory_p95=_scalar(params, "max(quantile_over_time(0.95, (%s)[%s:1m]))" % (memory,
                                                                                   window)),
        memory_peak=_scalar(params, "max(max_over_time((%s)[%s:1m]))" % (memory, window)),
        cpu_p95=_scalar(params, "max(quantile_over_time(0.95, (%s)[%s:1m]))" % (cpu, window)),
    )
    current = client.sanitize_for_serialization(container.resources) or {}
    recommended = res.recommend(usage["memory_p95"], usage["memory_peak"], usage["cpu_p95"],
                                params["headroom"], params["limit_factor"], current)
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": container.name, "resources": recommended}]}}}}
    before = yaml.safe_dump({"resources": current}, sort_keys=True)
    after = yaml.safe_dump({"resources": recommended}, sort_keys=True)
    diff = "".join(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True),
        "a/%s/%s" % (params["kind"].lower(), params["name"]),
        "b/%s/%s" % (params["kind"].lower(), params["name"])))
    summary = "%s/%s %s: requests cpu %s memory %s, limit memory %s (p95 memory %.0f MiB," \
              " peak %.0f MiB, p95 cpu %.3f cores over %s)" % (
                  params["kind"], params["name"], container.name,
                  recommended["requests"]["cpu"], recommended["requests"]["memory"],
                  recommended["limits"]["memory"], usage["memory_p95"] / 2 ** 20,
                  usage["memory_peak"] / 2 ** 20, usage["cpu_p95"], window)
    return dict(changed=False, current=current, recommended=recommended, usage=usage,
                queries=dict(memory=memory, cpu=cpu), patch=yaml.safe_dump(patch, sort_keys=False),
                diff=dict(before=before, after=after), unified_diff=diff,
                msg=summary + ("" if diff else "; matches what is set"))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
