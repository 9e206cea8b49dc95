#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Scale the Thanos Receive StatefulSet by the safe procedure."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: thanos_receive_scale
short_description: Scale Thanos Receive without losing writes or data
description:
  - Up, new receivers join the ring only once Ready; the StatefulSet is scaled, every new pod
    must be Ready within ready_timeout, then the ring takes them and convergence is proven.
  - Down, one member at a time, from the highest ordinal, ring before StatefulSet, proving the
    ring on every receiver (the leaving one included) before its pod is deleted; after the pod
    is gone, the block it flushed on shutdown must be in the bucket (its replica label, covering
    its head) before its PersistentVolumeClaim may be released (release_pvcs).
  - With restore_ring it returns to a recorded start (the rollback) in the safe order.
  - Takes every option of thanos_hashring for the ring changes.
options:
  replicas: {description: Target replicas., type: int, required: true}
  ready_timeout: {description: Seconds for new pods to be Ready (the runbook's ready_timeout param)., type: float, required: true}
  gone_timeout: {description: Seconds for a removed pod to finish its shutdown., type: float, default: 960}
  upload_timeout: {description: Seconds to wait for the removed receiver's final block., type: float, default: 300}
  verify_upload: {description: Require the final block in the bucket after a removal., type: bool, default: true}
  release_pvcs: {description: Delete a removed receiver's claim once its upload is verified., type: bool, default: false}
  bucket: {description: The Thanos blocks bucket., type: str}
  restore_ring: {description: Ring file to return to (rollback); replicas is the start count., type: str}
  replicas_git_path:
    description:
      - GitOps mode, the Kustomization (kustomization.yaml) of the receivers' overlay in the
        repository; the replicas are committed there (its C(replicas) field) and the
        StatefulSet is awaited at the new count after the sync. Scaling the StatefulSet
        directly would be reverted by ArgoCD's self-heal, with a receiver still in the ring.
    type: str
  sync_timeout: {description: GitOps mode, seconds for the sync to bring the committed replicas., type: float, default: 300}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Scale the receivers to 4
  watchkeeper.platform.thanos_receive_scale:
    context: observability
    replicas: 4
"""

RETURN = r"""
steps: {description: What was done, in order, with durations., type: list, returned: always}
start_replicas: {description: Replicas before., type: int, returned: always}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring_apply, kube, s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import parse

ARGUMENT_SPEC = dict(
    hashring_apply.ARGUMENT_SPEC,
    replicas=dict(type="int", required=True),
    ready_timeout=dict(type="float", required=True),
    gone_timeout=dict(type="float", default=960.0),
    upload_timeout=dict(type="float", default=300.0),
    verify_upload=dict(type="bool", default=True),
    release_pvcs=dict(type="bool", default=False),
    bucket=dict(type="str"),
    replicas_git_path=dict(type="str"),
    sync_timeout=dict(type="float", default=300.0),
    restore_ring=dict(type="str"),
    **s3.S3_SPEC
)


class Scaler(object):
    def __init__(self, client, params, check_mode):
        self.client = client
        self.params = params
        self.check_mode = check_mode
        self.ns = params["namespace"]
        self.name = params["statefulset"]
        self.steps = []

    def step(self, what, began, **details):
        entry = dict(step=what, seconds=round(time.monotonic() - began, 1))
        entry.update(details)
        self.steps.append(entry)
        return entry

    def pods(self):
        return kube.statefulset_pods(self.client, self.ns, self.name)

    def pod_names(self, count):
        return ["%s-%d" % (self.name, i) for i in range(count)]

    def ring(self, members, converge_pods, content=None):
        params = dict(self.params, members=members, converge_pods=converge_pods,
                      content=content)
        began = time.monotonic()
        result = hashring_apply.apply_ring(self.client, params, self.check_mode)
        self.step("ring", began, members=members, changed=result["changed"],
                  msg=result.get("msg", ""))
        return result

    def scale_to(self, replicas):
        began = time.monotonic()
        from kubernetes.client.exceptions import ApiException

        if self.params["mode"] == "gitops":
            return self.scale_through_git(replicas, began)
        try:
            kube.scale_statefulset(self.client, self.ns, self.name, replicas)
        except (ApiException, OSError) as exc:
            raise kube.api_error(exc, "scale StatefulSet %s/%s" % (self.ns, self.name)) from exc
        self.step("statefulset", began, replicas=replicas)

    def scale_through_git(self, replicas, began):
        """GitOps mode: commit the replicas to the overlay's Kustomization, then wait until
        the sync (ArgoCD) has set them on the StatefulSet."""
        name = self.name

        def set_replicas(kustomization):
            entries = [e for e in kustomization.get("replicas") or [] if e.get("name") != name]
            kustomization["replicas"] = [*entries, dict(name=name, count=replicas)]

        commit = hashring_apply.commit_yaml(
            self.params, self.params["replicas_git_path"], set_replicas,
            "replicas: %s to %d%s" % (name, replicas, (
                " (%s)" % self.params["commit_message"]) if self.params.get("commit_message")
                else ""), False,
            "set wk_receive_replicas_git_path to the kustomization.yaml of the receivers'"
            " overlay")
        asked = hashring_apply.ask_sync(self.client, self.params, commit)

        def synced():
            sts, _ = self.pods()
            return sts.spec.replicas == replicas, sts.spec.replicas

        done, live, waited = kube.wait_for("sync", synced, self.params["sync_timeout"], 2)
        if not done:
            raise kube.KubeFailure(
                "replicas %d committed (%s) but the StatefulSet still has %s after %.0f s: the"
                " sync did not happen" % (replicas, (commit or "")[:12], live, waited),
                "check the ArgoCD Application of the receivers (sync status, errors)",
                steps=self.steps)
        self.step("statefulset", began, replicas=replicas, commit=commit, via="git",
                  sync=asked)

    def wait_ready(self, count):
        began = time.monotonic()
        wanted = self.pod_names(count)

        def check():
            _, pods = self.pods()
            ready = {p.metadata.name for p in pods if kube.is_ready(p)}
            missing = [n for n in wanted if n not in ready]
            return not missing, missing

        done, missing, waited = kube.wait_for("ready", check, self.params["ready_timeout"], 2)
        if not done:
            raise kube.KubeFailure(
                "%s not Ready after %.0f s: a receiver joins the ring only once Ready, so the"
                " ring was not changed" % (", ".join(missing), waited),
                "read the pods' events and logs", steps=self.steps)
        self.step("ready", began, pods=wanted)

    def head_max_time_ms(self, pod):
        """The newest sample time in the receiver's heads (0 when it holds none)."""
        text = kube.proxy_get(self.client, self.ns, pod, self.params["http_port"], "metrics")
        samples = parse(text, ["prometheus_tsdb_head_max_time"])
        values = [v for _, v in samples.get("prometheus_tsdb_head_max_time", []) if v > 0]
        return int(max(values)) if values else 0

    def wait_gone(self, pod):
        began = time.monotonic()

        def check():
            _, pods = self.pods()
            return all(p.metadata.name != pod for p in pods), None

        done, _, waited = kube.wait_for("gone", check, self.params["gone_timeout"], 2)
        if not done:
            raise kube.KubeFailure("%s still terminating after %.0f s" % (pod, waited),
                                   "a receiver flushes its head on shutdown; read its log",
                                   steps=self.steps)
        self.step("terminated", began, pod=pod)

    def verify_upload(self, pod, head_max_ms):
        """The block the receiver cut on shutdown must be in the bucket, covering its head."""
        began = time.monotonic()
        if head_max_ms <= 0:
            self.step("upload", began, pod=pod, verified=True,
                      detail="its head held no samples: nothing to upload")
            return True
        client = s3.connect(self.params)
        bucket = self.params["bucket"]

        def check():
            newest = 0
            for meta in s3.thanos_blocks(client, bucket).values():
                labels = (meta.get("thanos") or {}).get("labels") or {}
                if labels.get("receive_replica") == pod:
                    newest = max(newest, int(meta.get("maxTime", 0)))
            return newest >= head_max_ms, newest

        done, newest, _ = kube.wait_for("upload", check, self.params["upload_timeout"], 3)
        self.step("upload", began, pod=pod, verified=done, head_max_time_ms=head_max_ms,
                  newest_block_max_time_ms=newest)
        return done

    def release(self, pod):
        began = time.monotonic()
        claim = "data-%s" % pod
        kube.core(self.client).delete_namespaced_persistent_volume_claim(claim, self.ns)
        self.step("release", began, claim=claim)

    # ------------------------------------------------------------------ procedures
    def up(self, current, target):
        self.scale_to(target)
        self.wait_ready(target)
        members = self.pod_names(target)
        self.ring(members, members)

    def down(self, current, target):
        for k in range(current - 1, target - 1, -1):
            leaving = "%s-%d" % (self.name, k)
            stay = self.pod_names(k)
            # Ring first: the leaving receiver must stop getting writes before it goes, and
            # it too must have loaded the ring (it forwards by it until it stops).
            self.ring(stay, [*stay, leaving])
            head = self.head_max_time_ms(leaving)
            self.scale_to(k)
            self.wait_gone(leaving)
            verified = (self.verify_upload(leaving, head)
                        if self.params["verify_upload"] else None)
            if verified is False:
                raise kube.KubeFailure(
                    "%s's final block (head up to %d ms) is not in bucket %s after %.0f s: its"
                    " claim data-%s is kept" % (leaving, head, self.params["bucket"],
                                                self.params["upload_timeout"], leaving),
                    "read its log for the final upload; nothing was released",
                    steps=self.steps)
            if self.params["release_pvcs"] and verified:
                self.release(leaving)

    def restore(self, current, start, ring_text):
        """Back to `start` replicas and `ring_text`, in the safe order for the direction."""
        if start > current:
            self.scale_to(start)
            self.wait_ready(start)
            self.ring(None, self.pod_names(start), content=ring_text)
        else:
            # Proven on the Ready receivers: a receiver that failed is why we roll back.
            self.ring(None, None, content=ring_text)
            if start < current:
                self.scale_to(start)
                for k in range(current - 1, start - 1, -1):
                    self.wait_gone("%s-%d" % (self.name, k))


def predict(params, current, target, pods):
    """Check mode: the steps and the rings the procedure would apply."""
    name = params["statefulset"]
    plan = []

    def scale(to):
        if params["mode"] == "gitops":
            return "commit replicas %d to %s in git, wait for the sync" % (
                to, params["replicas_git_path"])
        return "scale to %d" % to

    if target > current:
        how = "scale %s %d -> %d" % (name, current, target)
        if params["mode"] == "gitops":
            how = "%s (%s)" % (how, scale(target))
        plan.append("%s, wait for %s Ready" % (
            how, ", ".join("%s-%d" % (name, i) for i in range(current, target))))
        plan.append("ring: add %s, prove on %d receivers" % (
            ", ".join("%s-%d" % (name, i) for i in range(current, target)), target))
    for k in range(current - 1, target - 1, -1):
        plan.append("ring: remove %s-%d, prove on %d receivers; %s; wait for its"
                    " shutdown flush; verify its final block in the bucket%s" % (
                        name, k, k + 1, scale(k),
                        "; release data-%s-%d" % (name, k) if params["release_pvcs"] else ""))
    return plan


def run(module):
    params = module.params
    client = kube.connect(params)
    scaler = Scaler(client, params, module.check_mode)
    sts, pods = scaler.pods()
    current = int(sts.spec.replicas or 0)
    target = params["replicas"]
    rf = params["replication_factor"]
    result = dict(changed=False, start_replicas=current, replicas=target, steps=scaler.steps)
    if params["mode"] == "gitops" and not params.get("replicas_git_path"):
        raise kube.KubeFailure(
            "gitops mode: the replicas must change in git, or ArgoCD's self-heal would revert"
            " a direct scale (with a receiver still in the ring), and replicas_git_path is not"
            " set", "set wk_receive_replicas_git_path to the kustomization.yaml of the"
            " receivers' overlay (or use wk_hashring_mode: direct where ArgoCD does not"
            " self-heal)")
    if params.get("restore_ring") is not None:
        if module.check_mode:
            result["msg"] = "would restore %d replicas and the recorded ring" % target
            return result
        scaler.restore(current, target, params["restore_ring"])
        result.update(changed=True, msg="restored %d replicas and the ring" % target)
        return result
    if target < rf:
        raise kube.KubeFailure(
            "replicas=%d < replication factor %d: every write would fail its quorum" % (target, rf),
            "scale to at least %d, or lower the replication factor first" % rf)
    if target < current and params["verify_upload"] and not params.get("bucket"):
        raise kube.KubeFailure("scaling down verifies each removed receiver's final upload and"
                               " needs the blocks bucket", "set wk_s3_bucket_blocks")
    plan = predict(params, current, target, pods)
    result["plan"] = plan
    if target == current:
        result["msg"] = "already %d replicas: nothing to do" % current
        return result
    if module.check_mode:
        members = scaler.pod_names(target)
        ring = hashring_apply.apply_ring(client, dict(params, members=[
            m for m in members if m in {p.metadata.name for p in pods}] or None,
            converge_pods=None, content=None), True) if target < current else None
        result.update(changed=True, msg="would: " + " | ".join(plan))
        if ring is not None:
            result["diff"] = ring["diff"]
        return result
    began = time.monotonic()
    if target > current:
        scaler.up(current, target)
    else:
        scaler.down(current, target)
    result.update(changed=True, seconds=round(time.monotonic() - began, 1),
                  msg="%s %d -> %d in %.1f s: %s" % (
                      params["statefulset"], current, target, time.monotonic() - began,
                      "; ".join("%s %ss" % (s["step"], s["seconds"]) for s in scaler.steps)))
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module)
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
