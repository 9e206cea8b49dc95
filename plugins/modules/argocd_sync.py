#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Deploy an ArgoCD Application at a revision: request or await the sync, wait for Synced and Healthy."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: argocd_sync
short_description: Wait until an ArgoCD Application is Synced at exactly a revision and Healthy
description:
  - I(sync=request) asks ArgoCD to sync the Application at I(revision) (what C(argocd app sync
    --revision) sends); I(sync=wait) waits for its automated sync (the Application must have
    one). Either way it then waits until the Application is Synced at exactly I(revision),
    its sync operation Succeeded and its health is Healthy.
  - Without I(revision), the tracked branch's head in I(git_url) (else the Application's
    repoURL).
  - Fails naming each resource that is OutOfSync or not Healthy, with its pods' waiting
    reasons (ImagePullBackOff, CrashLoopBackOff); a failed sync operation fails at once.
  - I(release_stuck_pods) (after a revert) deletes a StatefulSet's pods that never became Ready
    on the reverted revision, so the controller recreates them from the restored template
    (Kubernetes' forced rollback of a StatefulSet).
  - Check mode reports the Application's state and changes nothing.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Unused., type: str, default: monitoring}
  application: {description: The ArgoCD Application., type: str, required: true}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  revision: {description: "The commit to deploy ('' the tracked branch's head).", type: str, default: ""}
  git_url: {description: The repository as watchkeeper reaches it (default the Application's repoURL)., type: str}
  sync: {description: Request the sync or wait for the automated one., type: str, choices: [request, wait], default: request}
  sync_timeout: {description: Seconds until Synced and Healthy., type: float, default: 300}
  release_stuck_pods: {description: Delete StatefulSet pods stuck on a reverted revision., type: bool, default: false}
  timeout: {description: Seconds per API request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Deploy the commit
  watchkeeper.platform.argocd_sync:
    context: observability
    application: observability-thanos-store
    revision: "{{ change.commit }}"
"""

RETURN = r"""
revision: {description: The deployed commit., type: str, returned: always}
seconds: {description: Seconds from the request to Synced and Healthy., type: float, returned: success}
before: {description: "The Application's state before (sync, revision, health).", type: dict, returned: always}
released: {description: The pods deleted by release_stuck_pods., type: list, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    argocd_app,
    gitops_repo,
    kube,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    application=dict(type="str", required=True),
    argocd_namespace=dict(type="str", default="argocd"),
    revision=dict(type="str", default=""),
    git_url=dict(type="str"),
    sync=dict(type="str", choices=["request", "wait"], default="request"),
    sync_timeout=dict(type="float", default=300.0),
    release_stuck_pods=dict(type="bool", default=False),
    timeout=dict(type="float", default=10.0),
)


def branch_head(url, branch):
    ref = branch if branch not in ("", "HEAD") else "HEAD"
    out = gitops_repo.run_git(["ls-remote", url, ref], "/")
    for line in out.splitlines():
        sha, name = line.split("\t")
        if name in (ref, "refs/heads/" + ref):
            return sha
    raise gitops_repo.GitFailure("%s has no branch %s" % (url, ref),
                                 "check the Application's spec.source.targetRevision")


def deploy(client, params, check_mode):
    ns, name = params["argocd_namespace"], params["application"]
    app = argocd_app.read(client, ns, name)
    before = argocd_app.summary(app)
    source = argocd_app.source_of(app)
    revision = params["revision"] or branch_head(params.get("git_url") or source["repoURL"],
                                                 source.get("targetRevision") or "")
    result = {"revision": revision, "before": before, "released": [], "changed": False}
    deployed = (before["sync"] == "Synced" and before["revision"] == revision and
                before["health"] == "Healthy")
    if check_mode or deployed:
        result["deployed"] = deployed
        return result
    if params["sync"] == "wait" and not before["auto_sync"]:
        raise kube.KubeFailure("Application %s has no automated sync to wait for" % name,
                               "run with -e sync=request")
    result["changed"] = True
    request = params["sync"] == "request"
    if params["release_stuck_pods"] and request:
        # The reverted template must be in the StatefulSet before its stuck pods go.
        argocd_app.sync_applied(client, ns, name, revision, params["sync_timeout"])
        result["released"] = argocd_app.release_stuck_pods(
            client, argocd_app.read(client, ns, name))
        result.update(argocd_app.wait_deployed(client, ns, name, revision,
                                               params["sync_timeout"]))
    else:
        result.update(argocd_app.deploy(client, ns, name, revision, params["sync_timeout"],
                                        request=request))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = deploy(kube.connect(params), params, module.check_mode)
    except (kube.KubeFailure, gitops_repo.GitFailure) as failure:
        module.fail_json(**failure.result())
    before = result["before"]
    was = "%s at %s, %s" % (before["sync"], before["revision"][:12], before["health"])
    if not result["changed"]:
        result["msg"] = "%s %s at %s (was %s)" % (
            module.params["application"], "deployed" if result.get("deployed") else
            "would be synced", result["revision"][:12], was)
    else:
        result["msg"] = "%s Synced at %s and Healthy after %.1f s (was %s)%s" % (
            module.params["application"], result["revision"][:12], result["seconds"], was,
            "; recreated %s from the restored template" % ", ".join(result["released"])
            if result["released"] else "")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
