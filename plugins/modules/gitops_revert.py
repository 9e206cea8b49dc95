#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Revert commits on the GitOps repository's tracked branch with one revert commit."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: gitops_revert
short_description: Revert a run's commits (or named commits) on an Application's tracked branch
description:
  - Clones the tracked branch of the ArgoCD Application's repository (I(git_url), else its
    repoURL) and makes one commit that reverts I(commits), or every commit of the watchkeeper
    run I(run_id) (found by its C(Watchkeeper-Run) trailer) that touched the Application's
    path and that no later commit reverted yet;
    pushes it. Nothing to revert is not a failure (a run that failed before committing).
  - Never rewrites history and never force-pushes; a revert that conflicts with a later commit
    fails and pushes nothing.
  - Check mode says which commits it would revert.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Unused., type: str, default: monitoring}
  application: {description: The ArgoCD Application whose branch is reverted., type: str, required: true}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  git_url: {description: The repository as watchkeeper reaches it (default the Application's repoURL)., type: str}
  run_id: {description: Revert this run's commits., type: str, default: ""}
  commits: {description: Revert these commits (newest first)., type: list, elements: str, default: []}
  message: {description: The first line of the revert commit., type: str, required: true}
  revert_run_id: {description: The run making the revert (its trailer)., type: str, default: ""}
  timeout: {description: Seconds per API request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Revert what this run committed
  watchkeeper.platform.gitops_revert:
    context: observability
    application: observability-thanos-store
    run_id: "{{ wk_run_id }}"
    message: "revert: thanos-store chart upgrade"
"""

RETURN = r"""
commit: {description: "The revert commit (none when nothing was reverted, or in check mode).", type: str, returned: always}
reverted: {description: "The reverted commits: sha, subject.", type: list, returned: always}
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
    git_url=dict(type="str"),
    run_id=dict(type="str", default=""),
    commits=dict(type="list", elements="str", default=[]),
    message=dict(type="str", required=True),
    revert_run_id=dict(type="str", default=""),
    timeout=dict(type="float", default=10.0),
)


def revert(client, params, check_mode):
    if not params["run_id"] and not params["commits"]:
        raise kube.KubeFailure("nothing names the commits to revert",
                               "give -e commit=<sha> (gitops-history lists them)")
    app = argocd_app.read(client, params["argocd_namespace"], params["application"])
    source = argocd_app.source_of(app)
    url = params.get("git_url") or source["repoURL"]
    with gitops_repo.Clone(url, source.get("targetRevision") or "") as clone:
        if params["commits"]:
            shas = [clone.git("rev-parse", "--verify", c + "^{commit}").strip()
                    for c in params["commits"]]
            already = set(clone.reverted_commits()) & set(shas)
            if already:
                raise gitops_repo.GitFailure(
                    "%s already reverted on %s" % (", ".join(s[:12] for s in already),
                                                   clone.branch),
                    "nothing to do; gitops-history shows the branch")
        else:
            shas = clone.run_commits(params["run_id"], source["path"])
        result = {"reverted": [clone.show(s) for s in shas], "commit": None,
                  "branch": clone.branch, "changed": bool(shas)}
        if check_mode or not shas:
            return result
        clone.revert(shas, params["message"], params["revert_run_id"])
        result["commit"] = clone.push()
        return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = revert(kube.connect(params), params, module.check_mode)
    except (kube.KubeFailure, gitops_repo.GitFailure) as failure:
        module.fail_json(**failure.result())
    names = "; ".join("%s %s" % (c["sha"][:12], c["subject"]) for c in result["reverted"])
    if not result["reverted"]:
        result["msg"] = "nothing to revert on %s" % result["branch"]
    elif module.check_mode:
        result["msg"] = "would revert on %s: %s" % (result["branch"], names)
    else:
        result["msg"] = "reverted on %s by %s: %s" % (result["branch"], result["commit"][:12],
                                                     names)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
