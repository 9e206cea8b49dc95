#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Scale the HA replicas of a full Prometheus server StatefulSet, safely, with rollback."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: prometheus_ha_scale
short_description: Scale the HA replicas of a Prometheus server StatefulSet
description:
  - The replicas of I(statefulset) are an HA set; identical servers, each with the external
    label I(replica_label) set to its own pod name, which Thanos Query deduplicates on.
  - Before any change, every pod must be Ready and report its own name as I(replica_label) in
    the configuration it loaded (so a new replica cannot write the same series as another).
  - Up; the StatefulSet is scaled, and each new pod must be Ready, report its own name as the
    label and scrape the same targets as replica 0. Down; each surplus pod's remote-write
    queue must be drained (nothing pending, sent up to what it ingested) before the
    StatefulSet is scaled down; claims are kept.
  - Any failure scales back to the start and waits for it, then fails naming the step.
  - Check mode returns the plan and sends the scale as a server-side dry run.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the StatefulSet., type: str, default: monitoring}
  statefulset: {description: The Prometheus server StatefulSet., type: str, required: true}
  replicas: {description: The number of HA replicas wanted., type: int, required: true}
  replica_label: {description: The external label that holds each replica's pod name., type: str, default: replica}
  http_port: {description: Prometheus's HTTP port., type: int, default: 9090}
  ready_timeout: {description: Seconds for a new replica to be Ready and scraping (the runbook's ready_timeout param)., type: float, required: true}
  drain_timeout: {description: Seconds for a surplus replica's queue to drain., type: float, default: 300}
  timeout: {description: Seconds per request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Run the platform Prometheus as an HA pair
  watchkeeper.platform.prometheus_ha_scale:
    context: observability
    namespace: monitoring
    statefulset: prometheus
    replicas: 2
"""

RETURN = r"""
before: {description: Replicas before., type: int, returned: always}
after: {description: Replicas after (the start again when rolled back)., type: int, returned: always}
labels: {description: "The replica label each Ready pod reports (pod: value).", type: dict, returned: always}
targets: {description: What replica 0 scrapes., type: list, returned: always}
steps: {description: What was done (or would be) in order., type: list, returned: always}
"""

import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_health,
    kube,
    prometheus_ha,
    promtext,
)

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    statefulset=dict(type="str", required=True),
    replicas=dict(type="int", required=True),
    replica_label=dict(type="str", default="replica"),
    http_port=dict(type="int", default=9090),
    ready_timeout=dict(type="float", required=True),
    drain_timeout=dict(type="float", default=300.0),
    timeout=dict(type="float", default=10.0),
)


class Failed(Exception):
    pass


class HAScaler(object):
    def __init__(self, client, params):
        self.client = client
        self.p = params
        self.ns = params["namespace"]
        self.name = params["statefulset"]
        self.label = params["replica_label"]
        self.steps = []
        self.clock = time.monotonic()

    # ---------------------------------------------------------------- reading
    def get(self, pod, path):
        return kube.proxy_get(self.client, self.ns, pod, self.p["http_port"], path,
                              timeout=self.p["timeout"])

    def external_labels(self, pod):
        return prometheus_ha.loaded_external_labels(self.get(pod, "api/v1/status/config"))

    def targets(self, pod):
        body = json.loads(self.get(pod, "api/v1/targets"))["data"]
        return sorted(t["discoveredLabels"]["__address__"] for t in body["activeTargets"])

    def pods(self):
        _, pods = kube.statefulset_pods(self.client, self.ns, self.name)
        return pods

    def step(self, text):
        now = time.monotonic()
        self.steps.append("%s (%.0f s)" % (text, now - self.clock))
        self.clock = now

    # ---------------------------------------------------------------- acting
    def wait_replicas(self, count, reference):
        """`count` pods, each Ready, its replica label its own name, scraping `reference`."""
        def ready():
            pods = self.pods()
            names = [p.metadata.name for p in pods]
            if len(pods) != count:
                return False, "%d pods (%s), %d wanted" % (len(pods), ", ".join(names), count)
            unready = [p.metadata.name for p in pods if not kube.is_ready(p)]
            if unready:
                return False, "%s not Ready" % ", ".join(unready)
            try:
                labels = dict((n, self.external_labels(n)) for n in names)
                scraped = dict((n, self.targets(n)) for n in names)
            except Exception as exc:  # a new process answers before it has loaded its config
                return False, str(exc).splitlines()[0][:160]
            problems = prometheus_ha.replica_label_problems(labels, self.label)
            for pod in names:
                difference = prometheus_ha.target_difference(reference, scraped[pod])
                if difference:
                    problems.append("%s %s" % (pod, difference))
            if problems:
                return False, "; ".join(problems)
            self.labels = dict((n, labels[n].get(self.label)) for n in names)
            return True, "%s Ready, each with its own %s, scraping the same %d targets" % (
                ", ".join(names), self.label, len(reference))

        ok, detail, _ = kube.wait_for("%s replicas" % self.name, ready, self.p["ready_timeout"])
        if not ok:
            raise Failed("%s not at %d Ready replicas within %.0f s: %s" % (
                self.name, count, self.p["ready_timeout"], detail))
        self.step(detail)

    def drained(self, pod):
        def empty():
            try:
                samples = promtext.parse(self.get(pod, "metrics"))
            except Exception as exc:
                return False, str(exc).splitlines()[0][:120]
            return agent_health.queue_drained(samples)

        ok, detail, _ = kube.wait_for("%s drained" % pod, empty, self.p["drain_timeout"])
        if not ok:
            raise Failed("%s did not drain its remote-write queue within %.0f s (%s): not"
                         " removed, nothing dropped" % (pod, self.p["drain_timeout"], detail))
        self.step("%s drained (%s)" % (pod, detail))

    def scale(self, replicas):
        kube.scale_statefulset(self.client, self.ns, self.name, replicas)
        self.step("StatefulSet %s scaled to %d" % (self.name, replicas))

    def wait_gone(self, count):
        def gone():
            pods = self.pods()
            if len(pods) <= count:
                self.labels = dict((n, v) for n, v in self.labels.items()
                                   if n in set(p.metadata.name for p in pods))
            return len(pods) <= count, "%d pods" % len(pods)

        ok, detail, _ = kube.wait_for("%s down to %d" % (self.name, count), gone,
                                      self.p["ready_timeout"])
        if not ok:
            raise Failed("%s still has %s after %.0f s" % (self.name, detail,
                                                           self.p["ready_timeout"]))
        self.step("%s down to %d pod(s) (claims kept)" % (self.name, count))

    # ---------------------------------------------------------------- procedure
    def run(self, check_mode):
        sts, pods = kube.statefulset_pods(self.client, self.ns, self.name)
        before, want = int(sts.spec.replicas or 0), int(self.p["replicas"])
        names = [p.metadata.name for p in pods]
        unready = [n for n, p in zip(names, pods, strict=False) if not kube.is_ready(p)]
        if len(pods) != before or unready or not pods:
            raise Failed("%s has %d of %d replicas Ready (%s): make every replica Ready"
                         " first" % (self.name, len(pods) - len(unready), before,
                                     ", ".join(unready) or "pods missing"))
        labels = dict((n, self.external_labels(n)) for n in names)
        self.labels = dict((n, labels[n].get(self.label)) for n in names)
        if want > 1:
            problems = prometheus_ha.replica_label_problems(labels, self.label)
            if problems:
                raise Failed("not an HA set Query can deduplicate: %s" % "; ".join(problems))
        reference = self.targets(names[0])
        result = {"before": before, "after": want, "labels": self.labels,
                  "targets": reference, "steps": self.steps, "changed": want != before}
        if want == before:
            self.step("already %d replica(s)" % want)
            return result
        plan = prometheus_ha.plan(self.name, before, want, self.label)
        if check_mode:
            kube.scale_statefulset(self.client, self.ns, self.name, want, dry_run=True)
            self.steps.extend("would " + s for s in plan)
            self.step("the API server accepted the scale to %d in a server-side dry run" % want)
            return result
        try:
            if want > before:
                self.scale(want)
                self.wait_replicas(want, reference)
            else:
                for pod in reversed(names[want:]):
                    self.drained(pod)
                self.scale(want)
                self.wait_gone(want)
            result["labels"] = self.labels
        except Exception as exc:
            self.rollback(before, reference)
            # Down, nothing was removed before the failure: the set is left as it was.
            result.update(after=before, failed=True, rolled_back=True,
                          msg="%s; %s %d replica(s)" % (
                              str(exc).splitlines()[0][:400],
                              "rolled back to" if want > before else "left at", before))
        return result

    def rollback(self, before, reference):
        self.scale(before)
        self.wait_replicas(before, reference)
        self.step("rollback: %s back to %d replica(s)" % (self.name, before))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["replicas"] < 1:
        module.fail_json(msg="replicas must be >= 1, got %d (an HA set keeps at least one"
                         " server)" % params["replicas"])
    try:
        result = HAScaler(kube.connect(params), params).run(module.check_mode)
    except Failed as exc:
        module.fail_json(msg=str(exc), steps=[])
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    except Exception as exc:  # ApiException and the like, before any change
        module.fail_json(msg="%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:400]))
    if not result.get("msg"):
        result["msg"] = "%s; replica labels: %s" % (
            "; ".join(result["steps"]) or "nothing to do",
            ", ".join("%s=%s" % kv for kv in sorted(result["labels"].items())))
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
