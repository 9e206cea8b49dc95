#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Re-sync a component's objects from the GitOps repository (ArgoCD sync, or server-side apply)."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: gitops_resync
short_description: Put a component's live objects back to what the GitOps repository says
description:
  - Reads the ArgoCD Application I(application) (its source repository, path and revision),
    renders the path (kustomize, with its Helm charts inflated) from the repository (I(git_url) when set, else the
    Application's repoURL) and compares it with the live objects (C(kubectl diff
    --server-side)), which is the drift ArgoCD would show as OutOfSync.
  - When drifted, re-syncs; I(mode=argocd) requests a sync of the Application and waits for
    ArgoCD's operation to succeed; I(mode=apply) server-side applies the rendered path with
    ArgoCD's field manager (clusters without a reachable ArgoCD). Then waits for the
    StatefulSets and Deployments it touched to be Ready and proves an empty diff.
  - Check mode reports the diff and changes nothing.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the component's workloads., type: str, default: monitoring}
  application: {description: The ArgoCD Application of the component., type: str, required: true}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  mode: {description: How to re-sync., type: str, choices: [argocd, apply], default: argocd}
  git_url: {description: The repository as watchkeeper reaches it (default the Application's repoURL)., type: str}
  kubectl: {description: The kubectl binary (kustomize rendering and diff)., type: str, default: kubectl}
  helm: {description: "The helm binary that inflates the Kustomization's helmCharts (a path without helmCharts needs none).", type: str, default: helm}
  tracking_method: {description: "How ArgoCD marks an Application's objects (argocd-cm application.resourceTrackingMethod); the rendered objects carry the same mark.", type: str, choices: [annotation, label, annotation+label], default: annotation}
  sync_timeout: {description: Seconds for ArgoCD to complete the sync., type: float, default: 120}
  ready_timeout: {description: Seconds for the re-synced workloads to be Ready (the runbook's ready_timeout param)., type: float, required: true}
  timeout: {description: Seconds per API request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Re-sync the agent from git
  watchkeeper.platform.gitops_resync:
    context: k8s-cluster-01
    namespace: monitoring
    application: k8s-cluster-01-prometheus-agent
"""

RETURN = r"""
drifted: {description: Whether the live objects differed from git., type: bool, returned: always}
objects: {description: "The drifted objects (Kind/name).", type: list, returned: always}
drift: {description: The unified diff live -> git before the re-sync., type: str, returned: always}
source: {description: "Repository, path and revision re-synced from.", type: str, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import gitops_sync, kube

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    application=dict(type="str", required=True),
    argocd_namespace=dict(type="str", default="argocd"),
    mode=dict(type="str", choices=["argocd", "apply"], default="argocd"),
    git_url=dict(type="str"),
    kubectl=dict(type="str", default="kubectl"),
    helm=dict(type="str", default="helm"),
    tracking_method=dict(type="str", choices=["annotation", "label", "annotation+label"],
                         default="annotation"),
    sync_timeout=dict(type="float", default=120.0),
    ready_timeout=dict(type="float", required=True),
    timeout=dict(type="float", default=10.0),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = gitops_sync.resync(kube.connect(params), params, module.check_mode)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    if not result["drifted"]:
        result["msg"] = "in sync with %s" % result["source"]
    elif module.check_mode:
        result["msg"] = "would re-sync %s from %s (%s): %s" % (
            ", ".join(result["objects"]) or "the drifted objects", result["source"],
            result["mode"], gitops_sync.drift_lines(result["drift"]))
    else:
        result["msg"] = "re-synced %s from %s (%s); no drift left: %s" % (
            ", ".join(result["objects"]), result["source"], result["mode"],
            gitops_sync.drift_lines(result["drift"]))
    if module._diff and result["drifted"]:
        result["diff"] = dict(prepared=result["drift"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
