#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Change a component's Helm chart version and values in the GitOps repository, validated first."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: gitops_chart_upgrade
short_description: Bump a Helm chart's version (and values) in an ArgoCD Application's Kustomization, validated, committed
description:
  - Clones the tracked branch of the GitOps repository (I(git_url), else the Application's
    repoURL), finds the Application's path and the C(helmCharts) entry I(chart) in its
    Kustomization, sets I(version) and merges I(values) into the chart's values (its
    valuesFile, else valuesInline).
  - Before committing, renders the path before and after (C(kubectl kustomize --enable-helm)),
    returns the values diff and the rendered diff, validates the result with a server-side
    dry-run apply and shows which live objects would change (C(kubectl diff --server-side)).
  - Check mode stops there. Otherwise commits (the message carries the trailer
    C(Watchkeeper-Run) with I(run_id), by which the run's rollback finds the commit) and pushes
    to the tracked branch; the sync is a separate step (argocd_sync).
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Unused (the Application says where its objects go)., type: str, default: monitoring}
  application: {description: The component's ArgoCD Application., type: str, required: true}
  argocd_namespace: {description: Namespace of the Applications., type: str, default: argocd}
  git_url: {description: The repository as watchkeeper reaches it (default the Application's repoURL)., type: str}
  chart: {description: "The helmCharts entry (default: the only one).", type: str, default: ""}
  version: {description: "The chart version to deploy ('' keeps it).", type: str, default: ""}
  values: {description: Values merged into the chart's values., type: dict, default: {}}
  allow_downgrade: {description: Allow a chart change that runs an older Thanos or Prometheus., type: bool, default: false}
  one_at_a_time: {description: "Roll this StatefulSet one pod at a time (partition held in a Kustomize patch, lowered by a commit per pod, each pod proven); '' lets the StatefulSet roll by itself.", type: str, default: ""}
  verify: {description: "How each pod is proven (thanos_receive: Ready, the new version, every receiver on the same ring hash).", type: str, choices: [ready, thanos_receive], default: ready}
  http_port: {description: The receivers' HTTP port (metrics)., type: int, default: 10902}
  sync_timeout: {description: Seconds for each sync to be Synced and Healthy., type: float, default: 300}
  ready_timeout: {description: Seconds for each pod to be proven (the runbook's ready_timeout param)., type: float, required: true}
  settle: {description: Seconds to hold after each pod before the next., type: float, default: 0}
  message: {description: The commit message., type: str, required: true}
  run_id: {description: The watchkeeper run (the commit's Watchkeeper-Run trailer)., type: str, default: ""}
  kubectl: {description: The kubectl binary., type: str, default: kubectl}
  helm: {description: The helm binary kustomize inflates charts with., type: str, default: helm}
  tracking_method: {description: "How ArgoCD marks an Application's objects.", type: str, choices: [annotation, label, annotation+label], default: annotation}
  timeout: {description: Seconds per API request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Thanos Store's chart to 1.1.0
  watchkeeper.platform.gitops_chart_upgrade:
    context: observability
    application: observability-thanos-store
    version: 1.1.0
    message: "thanos-store: chart 1.1.0"
"""

RETURN = r"""
chart: {description: The chart changed., type: str, returned: always}
from_version: {description: The chart version before., type: str, returned: always}
to_version: {description: The chart version after., type: str, returned: always}
values_diff: {description: Unified diff of the chart's values., type: str, returned: always}
rendered_diff: {description: Unified diff of the rendered manifests., type: str, returned: always}
notes: {description: "The release notes' breaking changes the version change crosses: workload, program, from, to, id, since, change, problems.", type: list, returned: always}
downgrades: {description: The workloads that go to an older version., type: list, returned: always}
objects: {description: "The live objects the change would alter (Kind/name).", type: list, returned: always}
commit: {description: "The pushed commit (none in check mode or without a change).", type: str, returned: always}
previous: {description: The branch's head before the change., type: str, returned: always}
steps: {description: "With one_at_a_time: each pod rolled (pod, commit, seconds, evidence).", type: list, returned: always}
branch: {description: The tracked branch., type: str, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    argocd_app,
    gitops_change,
    gitops_repo,
    gitops_rollout,
    gitops_sync,
    kube,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    application=dict(type="str", required=True),
    argocd_namespace=dict(type="str", default="argocd"),
    git_url=dict(type="str"),
    chart=dict(type="str", default=""),
    version=dict(type="str", default=""),
    values=dict(type="dict", default={}),
    allow_downgrade=dict(type="bool", default=False),
    one_at_a_time=dict(type="str", default=""),
    verify=dict(type="str", choices=["ready", "thanos_receive"], default="ready"),
    http_port=dict(type="int", default=10902),
    sync_timeout=dict(type="float", default=300.0),
    ready_timeout=dict(type="float", required=True),
    settle=dict(type="float", default=0.0),
    message=dict(type="str", required=True),
    run_id=dict(type="str", default=""),
    kubectl=dict(type="str", default="kubectl"),
    helm=dict(type="str", default="helm"),
    tracking_method=dict(type="str", choices=["annotation", "label", "annotation+label"],
                         default="annotation"),
    timeout=dict(type="float", default=10.0),
)


def upgrade(client, params, check_mode):
    app = argocd_app.read(client, params["argocd_namespace"], params["application"])
    source = argocd_app.source_of(app)
    url = params.get("git_url") or source.get("repoURL")
    sts_name = params["one_at_a_time"]
    with gitops_repo.Clone(url, source.get("targetRevision") or "") as clone:
        directory = clone.path(source["path"])
        held = gitops_rollout.held_partition(directory)
        replicas = 0
        if sts_name:
            sts = kube.apps(client).read_namespaced_stateful_set(sts_name, params["namespace"])
            replicas = int(sts.spec.replicas or 0)

        def edit(d):
            out = gitops_change.edit_chart(d, params["chart"], params["version"],
                                           params["values"])
            if sts_name and (out["files"] or held is not None):  # a rollout to start or finish
                out["files"] += gitops_rollout.set_partition(
                    d, gitops_change.kustomization_file(d), sts_name,
                    replicas if held is None else held)
            return out

        result = gitops_change.plan(params, app, directory, edit)
        rolling = bool(sts_name and (result["files"] or held is not None))
        result.update(previous=clone.head(), branch=clone.branch, commit=None, steps=[],
                      path=source["path"], changed=bool(result["files"]) or rolling,
                      rolling=rolling, held=held, replicas=replicas)
        if check_mode or not result["changed"]:
            return result
        if result["files"]:
            sha = clone.commit(sorted(set(source["path"] + "/" + f for f in result["files"])),
                               params["message"], params["run_id"])
            result["commit"] = clone.push() if sha else None
        if rolling:
            gitops_rollout.deploy(client, params, clone.head())
            image = result["images"].get("StatefulSet/" + sts_name, "")
            version = image.rpartition(":")[2] if params["verify"] == "thanos_receive" else ""
            result["steps"] = gitops_rollout.roll(
                client, params, clone, source, sts_name, replicas,
                replicas if held is None else held, version, params["application"])
            result["commit"] = clone.head()
        return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        result = upgrade(kube.connect(params), params, module.check_mode)
    except (kube.KubeFailure, gitops_repo.GitFailure) as failure:
        module.fail_json(**failure.result())
    change = "chart %s %s%s%s" % (
        result["chart"], result["from_version"],
        (" -> " + result["to_version"]) if result["to_version"] != result["from_version"]
        else "", " with new values" if result["values_diff"] else "")
    objects = ", ".join(result["objects"]) or "no live object"
    if result["notes"]:
        change += " (release notes: %s)" % "; ".join(
            "%s %s: %s" % (n["program"], n["since"], n["change"]) for n in result["notes"])
    if result["downgrades"]:
        change += " (downgrade: %s)" % "; ".join(result["downgrades"])
    if not result["changed"]:
        result["msg"] = "%s: already in git at %s" % (change, result["previous"][:12])
    elif module.check_mode and result["rolling"]:
        result["msg"] = "would commit %s to %s, then roll %s one pod at a time (%d pods, from" \
            " the highest ordinal), proving each: %s" % (
                change, result["branch"], module.params["one_at_a_time"],
                result["replicas"] if result["held"] is None else result["held"],
                gitops_sync.drift_lines(result["live_diff"]))
    elif module.check_mode:
        result["msg"] = "would commit %s to %s (validated by a server-side dry run); would" \
            " change %s: %s" % (change, result["branch"], objects,
                                gitops_sync.drift_lines(result["live_diff"]))
    elif result["rolling"]:
        result["msg"] = "committed %s; rolled %s one at a time (%s), %s now at %s" % (
            change, module.params["one_at_a_time"], "; ".join(
                "%s %.1f s: %s" % (s["pod"], s["seconds"], s["evidence"])
                for s in result["steps"]) or "nothing left to roll", result["branch"],
            result["commit"][:12])
    else:
        result["msg"] = "committed %s as %s on %s; will change %s" % (
            change, result["commit"][:12], result["branch"], objects)
    if module._diff and result["changed"]:
        result["diff"] = dict(prepared=result["values_diff"] + result["rendered_diff"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
