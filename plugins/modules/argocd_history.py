#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""An ArgoCD Application's deployments, each with its commit from the GitOps repository."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: argocd_history
short_description: An Application's deployed revisions with their commits, and the commits not deployed yet
description:
  - Reads the Application's C(status.history) (the revisions ArgoCD deployed, when and by whom,
    automated or a user) and joins each with its commit in the GitOps repository (subject,
    author, date); also lists the commits on the tracked branch that touched the Application's
    path since the deployed revision (not deployed yet).
  - Read-only.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Unused., type: str, default: monitoring}
  application: {description: The ArgoCD Application., type: str, required: true}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  git_url: {description: The repository as watchkeeper reaches it (default the Application's repoURL)., type: str}
  limit: {description: How many deployments., type: int, default: 10}
  timeout: {description: Seconds per API request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- watchkeeper.platform.argocd_history:
    context: observability
    application: observability-thanos-store
"""

RETURN = r"""
deployments: {description: "Newest first: id, revision, deployed_at, initiated_by, subject, author.", type: list, returned: always}
pending: {description: "Commits on the branch touching the path, newer than the deployed revision.", type: list, returned: always}
state: {description: "The Application's sync status, revision and health.", type: dict, returned: always}
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
    limit=dict(type="int", default=10),
    timeout=dict(type="float", default=10.0),
)


def history(client, params):
    app = argocd_app.read(client, params["argocd_namespace"], params["application"])
    source = argocd_app.source_of(app)
    state = argocd_app.summary(app)
    deployments = argocd_app.history(app, params["limit"])
    with gitops_repo.Clone(params.get("git_url") or source["repoURL"],
                           source.get("targetRevision") or "") as clone:
        for entry in deployments:
            try:
                entry.update({k: v for k, v in clone.show(entry["revision"]).items()
                              if k != "sha"})
            except gitops_repo.GitFailure:
                entry["subject"] = "(commit not on %s)" % clone.branch
        pending = []
        if state["revision"]:
            out = clone.git("log", "--format=%H", "%s..HEAD" % state["revision"], "--",
                            source["path"])
            pending = [clone.show(sha) for sha in out.split()]
    return {"deployments": deployments, "pending": pending, "state": state,
            "changed": False}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = history(kube.connect(module.params), module.params)
    except (kube.KubeFailure, gitops_repo.GitFailure) as failure:
        module.fail_json(**failure.result())
    state = result["state"]
    lines = ["%s %s at %s, %s" % (module.params["application"], state["sync"],
                                  state["revision"][:12], state["health"])]
    for d in result["deployments"]:
        lines.append("#%s %s %s %s (%s)" % (d["id"], d["deployed_at"], d["revision"][:12],
                                           d.get("subject", ""), d["initiated_by"]))
    for p in result["pending"]:
        lines.append("not deployed: %s %s (%s)" % (p["sha"][:12], p["subject"], p["author"]))
    result["msg"] = " | ".join(lines)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
