#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Build, validate, apply and prove a Thanos Receive hashring."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: thanos_hashring
short_description: Build, validate, apply and prove a Thanos Receive hashring
description:
  - Builds the catch-all ring from the receive StatefulSet's Ready pods (or the given members),
    keeps every other ring as it is, validates the result (JSON array, tenant rings before the
    one catch-all ring, endpoints >= replication factor, gRPC ports, algorithm), shows the
    diff, applies it (direct mode patches the ConfigMap; gitops mode commits the ConfigMap
    manifest to the configuration repository) and then proves convergence, waiting until every
    Ready receiver reports C(thanos_receive_config_hash) equal to the hash of the new file,
    its last reload successful and no new hashring file errors.
  - In check mode it returns the predicted ring and diff and changes nothing.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the receivers., type: str, default: monitoring}
  statefulset: {description: The receive StatefulSet., type: str, default: thanos-receive}
  configmap: {description: The hashring ConfigMap (wk_hashring_configmap)., type: str, required: true}
  key: {description: The ConfigMap key holding the file., type: str, default: hashrings.json}
  members:
    description: Pod names for the catch-all ring; default every Ready pod of the StatefulSet.
    type: list
    elements: str
  endpoint_template:
    description: How a member becomes an endpoint; fields pod, ip, service, namespace, port.
    type: str
    default: "{pod}.{service}.{namespace}.svc.cluster.local:{port}"
  service: {description: The receivers' headless Service., type: str, default: thanos-receive}
  grpc_port: {description: The receivers' gRPC port., type: int, default: 10901}
  http_port: {description: The receivers' HTTP port (metrics)., type: int, default: 10902}
  replication_factor: {description: The receivers' replication factor., type: int, default: 2}
  mode: {description: Where the ring is changed., type: str, choices: [direct, gitops], default: direct}
  git_url: {description: Configuration repository (gitops mode)., type: str}
  git_path: {description: Path of the ConfigMap manifest in the repository., type: str}
  git_branch: {description: Branch to commit to., type: str, default: main}
  commit_message: {description: Commit message (gitops mode)., type: str}
  application: {description: "GitOps mode, the receivers' ArgoCD Application: a sync at the commit is requested rather than awaited ('' waits for the automated sync).", type: str, default: ""}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  converge: {description: Wait for proof of convergence after applying., type: bool, default: true}
  converge_timeout: {description: Seconds to wait for convergence., type: float, default: 180}
  converge_pods:
    description: Pods that must report the new hash; default every Ready pod of the StatefulSet.
    type: list
    elements: str
  content:
    description:
      - An exact hashring file to apply instead of building one (a rollback to the ring that
        was there before). Validated like a built one.
    type: str
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Ring from the Ready receivers, applied and proven
  watchkeeper.platform.thanos_hashring:
    context: observability
    namespace: monitoring
"""

RETURN = r"""
ring: {description: The ring applied (or predicted in check mode)., type: list, returned: always}
previous: {description: The ring before., type: list, returned: always}
members: {description: Pods in the catch-all ring., type: list, returned: always}
expected_hash: {description: thanos_receive_config_hash of the new file., type: float, returned: always}
reported: {description: What each receiver reported last., type: dict, returned: when converging}
lagging: {description: Receivers that did not converge., type: list, returned: when converging}
converge_seconds: {description: Seconds from apply to proof., type: float, returned: when converging}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring_apply, kube

ARGUMENT_SPEC = hashring_apply.ARGUMENT_SPEC


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = hashring_apply.apply_ring(kube.connect(module.params), module.params,
                                           module.check_mode)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
