# Copyright: watchkeeper maintainers; Apache-2.0
"""A StatefulSet's new version rolled out one pod at a time through git, each pod proven
before the next: the StatefulSet's `updateStrategy.rollingUpdate.partition` held in a
Kustomize patch of the Application's path (pods with an ordinal >= partition run the new
template), lowered by one commit per pod, synced by ArgoCD each time.

For Thanos receivers, each step waits until the new pod is Ready on the new revision, runs
the new version (thanos_build_info) and every Ready receiver reports the same hashring
config hash (the ring loaded everywhere), then holds `settle` seconds before the next pod.
The last commit removes the patch: the StatefulSet is as the chart renders it.

A commit per step keeps git saying what runs at every moment; the patch file is named
watchkeeper-rollout.yaml so a person reading the repository sees a rollout in progress, and a
re-run continues from the partition it holds.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import time

from ansible_collections.watchkeeper.platform.plugins.module_utils import argocd_app, kube
from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import parse, total

PATCH_FILE = "watchkeeper-rollout.yaml"


def _yaml():
    import yaml

    return yaml


def held_partition(directory):
    """The partition the rollout patch holds, None without one."""
    path = os.path.join(directory, PATCH_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        doc = _yaml().safe_load(handle) or {}
    return int(((doc.get("spec") or {}).get("updateStrategy") or {}).get(
        "rollingUpdate", {}).get("partition", 0))


def set_partition(directory, kustomization_name, statefulset, partition):
    """Hold the StatefulSet at `partition` (None: remove the hold); returns the files changed
    (relative to directory)."""
    yaml = _yaml()
    kpath = os.path.join(directory, kustomization_name)
    with open(kpath) as handle:
        kustomization = yaml.safe_load(handle) or {}
    patches = kustomization.setdefault("patches", [])
    listed = any(p.get("path") == PATCH_FILE for p in patches)
    path = os.path.join(directory, PATCH_FILE)
    changed = []
    if partition is None:
        if listed:
            kustomization["patches"] = [p for p in patches if p.get("path") != PATCH_FILE]
            if not kustomization["patches"]:
                del kustomization["patches"]
            changed.append(kustomization_name)
        if os.path.exists(path):
            os.remove(path)
            changed.append(PATCH_FILE)
    else:
        text = yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": statefulset},
            "spec": {"updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"partition": int(partition)}}}},
            sort_keys=False)
        text = "# watchkeeper: a rollout one pod at a time is in progress\n" + text
        old = None
        if os.path.exists(path):
            with open(path) as handle:
                old = handle.read()
        if old != text:
            with open(path, "w") as handle:
                handle.write(text)
            changed.append(PATCH_FILE)
        if not listed:
            patches.append({"path": PATCH_FILE})
            changed.append(kustomization_name)
    if kustomization_name in changed:
        with open(kpath, "w") as handle:
            handle.write(yaml.safe_dump(kustomization, sort_keys=False, width=1000))
    return changed


def receiver_state(client, namespace, pod, port):
    """(version, config hash) a receiver reports on /metrics, through the pod proxy."""
    text = kube.proxy_get(client, namespace, pod, port, "metrics")
    samples = parse(text, ("thanos_build_info", "thanos_receive_config_hash"))
    version = None
    for labels, _ in samples.get("thanos_build_info", []):
        version = labels.get("version")
    return version, total(samples, "thanos_receive_config_hash")


def prove_pod(client, params, sts_name, ordinal, version, timeout):
    """Wait until pod `ordinal` is Ready on the StatefulSet's update revision and (for
    receivers) runs `version` with every Ready receiver on the same ring hash."""
    namespace = params["namespace"]
    pod_name = "%s-%d" % (sts_name, ordinal)

    def proven():
        sts, pods = kube.statefulset_pods(client, namespace, sts_name)
        mine = [p for p in pods if p.metadata.name == pod_name]
        if not mine or not kube.is_ready(mine[0]):
            return False, "%s not Ready" % pod_name
        if (mine[0].metadata.labels or {}).get("controller-revision-hash") != \
                sts.status.update_revision:
            return False, "%s not on the new revision yet" % pod_name
        if params.get("verify") != "thanos_receive":
            return True, "%s Ready on the new revision" % pod_name
        hashes = {}
        for pod in pods:
            if not kube.is_ready(pod):
                return False, "%s not Ready" % pod.metadata.name
            try:
                running, hashes[pod.metadata.name] = receiver_state(
                    client, namespace, pod.metadata.name, params["http_port"])
            except Exception as exc:  # not serving yet
                return False, "%s: %s" % (pod.metadata.name, str(exc).splitlines()[0][:120])
            if pod.metadata.name == pod_name and version and \
                    running != version.lstrip("v"):
                return False, "%s runs %s, not %s" % (pod_name, running, version)
        if len(set(hashes.values())) != 1:
            return False, "receivers on different rings: %s" % hashes
        return True, "%s Ready on %s; %d receivers on ring hash %s" % (
            pod_name, version or "the new revision", len(hashes),
            "%.0f" % (next(iter(hashes.values())) or 0))

    ok, detail, waited = kube.wait_for("%s proven" % pod_name, proven, float(timeout))
    if not ok:
        raise kube.KubeFailure("%s not proven within %.0f s: %s" % (pod_name, float(timeout),
                                                                    detail),
                               "kubectl describe pod %s; its log" % pod_name)
    return detail, waited


def step(client, params, clone, source, statefulset, partition, message, run_id,
         healthy=True):
    """Commit the hold at `partition` (None: released), push, sync at the commit, wait for
    Synced and Healthy (healthy=False: until the sync applied it; the caller proves the pod);
    returns the commit (None when git already said so)."""
    from ansible_collections.watchkeeper.platform.plugins.module_utils import gitops_change

    directory = clone.path(source["path"])
    kname = gitops_change.kustomization_file(directory)
    files = set_partition(directory, kname, statefulset, partition)
    sha = None
    if files:
        sha = clone.commit([source["path"] + "/" + f for f in files], message, run_id)
        if sha:
            sha = clone.push()
    if healthy:
        deploy(client, params, sha or clone.head())
    else:
        argocd_app.sync_applied(client, params["argocd_namespace"], params["application"],
                                sha or clone.head(), params["sync_timeout"])
    return sha


def deploy(client, params, revision):
    return argocd_app.deploy(client, params["argocd_namespace"], params["application"],
                             revision, params["sync_timeout"])


def roll(client, params, clone, source, statefulset, replicas, start, version, label):
    """Lower the partition from `start` to 0 one pod at a time, proving each; then release the
    hold. Returns the steps: pod, seconds, commit, evidence."""
    steps = []
    ordinal = int(start) - 1
    try:
        while ordinal >= 0:
            began = time.monotonic()
            sha = step(client, params, clone, source, statefulset, ordinal,
                       "%s: roll %s-%d to %s (%d of %d)" % (
                           label, statefulset, ordinal, version or "the new revision",
                           replicas - ordinal, replicas), params["run_id"], healthy=False)
            evidence, _ = prove_pod(client, params, statefulset, ordinal, version,
                                    params["ready_timeout"])
            if params.get("settle"):
                time.sleep(float(params["settle"]))
            steps.append({"pod": "%s-%d" % (statefulset, ordinal), "commit": sha,
                          "seconds": round(time.monotonic() - began, 1),
                          "evidence": evidence})
            ordinal -= 1
        step(client, params, clone, source, statefulset, None,
             "%s: %s rolled out, hold released" % (label, statefulset), params["run_id"])
    except kube.KubeFailure as exc:
        done = [s["pod"] for s in steps]
        waiting = ["%s-%d" % (statefulset, o) for o in range(ordinal - 1, -1, -1)]
        at = "%s-%d" % (statefulset, ordinal) if ordinal >= 0 else "releasing the hold"
        raise kube.KubeFailure(
            "%s; rolled to %s: %s; failed at %s; not started: %s" % (
                exc.message, version or "the new revision", ", ".join(done) or "none", at,
                ", ".join(waiting) or "none"), exc.hint, steps=steps) from exc
    return steps
