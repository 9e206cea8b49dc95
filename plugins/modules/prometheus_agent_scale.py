#!/usr/bin/python
# Copyright: watchkeeper maintainers; Apache-2.0
"""Shard a cluster's Prometheus Agent over N StatefulSets (hashmod), safely, with rollback."""

from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
module: prometheus_agent_scale
short_description: Shard a Prometheus Agent's scrape targets over N agents (hashmod)
description:
  - Shard 0 is the agent as deployed (I(statefulset), its ConfigMap); shard i is StatefulSet
    C(<statefulset>-shard-i) with ConfigMap C(<statefulset>-shard-i-config), made from shard
    0's (agent_shards). Every scrape job of shard i of N keeps the targets whose
    C(__address__) hashes to i (hashmod N).
  - Up; the new shards are created with the new modulus and must be Ready and scraping, then
    each existing shard gets the new modulus (ConfigMap, then a restart; proven by the
    configuration the agent reports). Down; the remaining shards get the new modulus first (so
    every target is scraped again), then each surplus shard is removed only after its
    remote-write queue drained (nothing pending, sent up to what it ingested); its claim stays.
  - Any failure restores the ConfigMaps, restarts what had been reconfigured and removes the
    shards it created, then fails naming the step.
  - Check mode returns the plan, the predicted target assignment and the targets that would
    move, sends every write as a server-side dry run (so the API server validates the new
    objects) and, with --diff, the objects as a diff; it changes nothing.
options:
  kubeconfig: {description: Path of the kubeconfig., type: str}
  context: {description: Kubeconfig context of the cluster., type: str}
  namespace: {description: Namespace of the agent., type: str, default: monitoring}
  statefulset: {description: The agent's StatefulSet (shard 0)., type: str, default: prometheus-agent}
  configmap: {description: Shard 0's ConfigMap (default the pod template's configMap volume)., type: str}
  configmap_key: {description: The key holding prometheus.yml., type: str, default: prometheus.yml}
  shards: {description: The number of shards wanted., type: int, required: true}
  shard_pod_annotations: {description: "Pod annotations per shard number (a string key), e.g. an address plan.", type: dict, default: {}}
  http_port: {description: The agents' HTTP port., type: int, default: 9090}
  ready_timeout: {description: Seconds for a shard to be Ready and scraping (the runbook's ready_timeout param)., type: float, required: true}
  drain_timeout: {description: Seconds for a surplus shard's queue to drain before it goes., type: float, default: 300}
  timeout: {description: Seconds per request., type: float, default: 10}
author: watchkeeper maintainers
"""

EXAMPLES = r"""
- name: Two agents share the scrape targets
  watchkeeper.platform.prometheus_agent_scale:
    context: k8s-cluster-01
    namespace: monitoring
    shards: 2
"""

RETURN = r"""
before: {description: Shards before., type: int, returned: always}
after: {description: Shards after (the start again when rolled back)., type: int, returned: always}
targets: {description: The scrape addresses of the agent's jobs., type: list, returned: always}
assignment: {description: "Predicted targets per shard (shard -> addresses).", type: dict, returned: always}
steps: {description: What was done (or would be) in order., type: list, returned: always}
moves: {description: "Targets whose shard changes (target: shards now -> shard).", type: list, returned: always}
diff: {description: Check mode with diff, the objects the run would create, patch or delete (each accepted by a server-side dry run)., type: list, returned: check mode with --diff}
"""

import contextlib
import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    agent_health,
    kube,
    promtext,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_shards as shards_

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    statefulset=dict(type="str", default="prometheus-agent"),
    configmap=dict(type="str"),
    configmap_key=dict(type="str", default="prometheus.yml"),
    shards=dict(type="int", required=True),
    shard_pod_annotations=dict(type="dict", default={}),
    http_port=dict(type="int", default=9090),
    ready_timeout=dict(type="float", required=True),
    drain_timeout=dict(type="float", default=300.0),
    timeout=dict(type="float", default=10.0),
)


class Failed(Exception):
    pass


class Scaler(object):
    def __init__(self, client, params):
        import yaml
        from kubernetes import client as k

        self.yaml = yaml
        self.api_client = client
        self.core = k.CoreV1Api(client)
        self.apps = k.AppsV1Api(client)
        self.p = params
        self.ns = params["namespace"]
        self.base = params["statefulset"]
        self.steps = []
        self.saved = {}  # ConfigMap name -> (data, annotations) before we touched it
        self.created = []  # shard numbers whose StatefulSet / ConfigMap we created
        self.expected = []  # every scrape address the shards discovered at the start
        self.clock = time.monotonic()

    # ---------------------------------------------------------------- reading
    def current(self):
        """{shard: StatefulSet} of the agent's shards; fails on an unrecognised state."""
        found = {}
        for sts in self.apps.list_namespaced_stateful_set(self.ns).items:
            shard = shards_.shard_of(sts.metadata.name, self.base)
            if shard is not None:
                found[shard] = sts
        if 0 not in found:
            raise Failed("StatefulSet %s/%s not found: check wk_namespace" % (self.ns, self.base))
        if sorted(found) != list(range(len(found))):
            raise Failed("shards %s are not contiguous from 0: fix by hand first" % sorted(found))
        for shard, sts in found.items():
            if shard and (sts.spec.replicas or 0) != 1:
                raise Failed("%s has %s replicas; a shard has exactly 1" % (
                    sts.metadata.name, sts.spec.replicas))
        return found

    def base_configmap(self, sts):
        if self.p.get("configmap"):
            return self.p["configmap"]
        for volume in sts.spec.template.spec.volumes or []:
            if volume.config_map is not None:
                return volume.config_map.name
        raise Failed("%s mounts no ConfigMap: set configmap" % sts.metadata.name)

    def read_config(self, name):
        cm = self.core.read_namespaced_config_map(name, self.ns)
        text = (cm.data or {}).get(self.p["configmap_key"])
        if text is None:
            raise Failed("ConfigMap %s has no key %s" % (name, self.p["configmap_key"]))
        return cm, text

    def targets(self, pod):
        """Scrape addresses of the agent (active and dropped: all it discovers)."""
        body = json.loads(kube.proxy_get(self.api_client, self.ns, pod, self.p["http_port"],
                                         "api/v1/targets", timeout=self.p["timeout"]))["data"]
        active = sorted(t["discoveredLabels"]["__address__"] for t in body["activeTargets"])
        dropped = sorted(t["discoveredLabels"]["__address__"]
                         for t in body.get("droppedTargets") or [])
        return active, dropped

    def loaded_modulus(self, pod):
        body = json.loads(kube.proxy_get(self.api_client, self.ns, pod, self.p["http_port"],
                                         "api/v1/status/config", timeout=self.p["timeout"]))
        return shards_.modulus_of(self.yaml.safe_load(body["data"]["yaml"]) or {})

    # ---------------------------------------------------------------- acting
    def step(self, text):
        """Record what was done and how long it took (since the previous step)."""
        now = time.monotonic()
        self.steps.append("%s (%.0f s)" % (text, now - self.clock))
        self.clock = now

    def put_config(self, name, text, annotations=None):
        cm = self.core.read_namespaced_config_map(name, self.ns)
        if name not in self.saved:
            self.saved[name] = (dict(cm.data or {}), dict(cm.metadata.annotations or {}))
        body = {"data": {self.p["configmap_key"]: text}}
        if annotations is not None:
            body["metadata"] = {"annotations": annotations}
        self.core.patch_namespaced_config_map(name, self.ns, body)

    def restart(self, shard, modulus):
        """Delete the shard's pod; wait for a new one Ready that runs `modulus`."""
        name = shards_.statefulset_name(self.base, shard)
        _, pods = kube.statefulset_pods(self.api_client, self.ns, name)
        old = set(p.metadata.uid for p in pods)
        for pod in pods:
            self.core.delete_namespaced_pod(pod.metadata.name, self.ns)
        self.wait_shard(shard, modulus, exclude=old)

    def wait_shard(self, shard, modulus, exclude=()):
        """A new pod of the shard Ready, reporting `modulus` in the configuration it loaded
        (/api/v1/status/config), discovering every target known at the start and scraping
        only targets that hash to it. A restarted Prometheus answers before its scrape
        manager has the targets (discovery updates are batched): Ready alone proves little."""
        name = shards_.statefulset_name(self.base, shard)

        def ready():
            _, pods = kube.statefulset_pods(self.api_client, self.ns, name)
            fresh = [p for p in pods if p.metadata.uid not in exclude and kube.is_ready(p)]
            if not fresh:
                return False, "%s: no new Ready pod" % name
            try:
                loaded = self.loaded_modulus(fresh[0].metadata.name)
                active, dropped = self.targets(fresh[0].metadata.name)
            except Exception as exc:  # not answering yet
                return False, "%s: %s" % (name, str(exc).splitlines()[0][:120])
            if loaded != modulus:
                return False, "%s runs modulus %d, not %d" % (name, loaded, modulus)
            missing = sorted(set(self.expected) - set(active) - set(dropped))
            if missing:
                return False, "%s has not discovered %s yet" % (name, ", ".join(missing))
            foreign = [t for t in active if shards_.owner(t, modulus) != shard]
            if foreign:
                return False, "%s scrapes %s, which hash to other shards" % (
                    name, ", ".join(foreign))
            return True, "%s Ready, modulus %d, scraping %d of %d targets" % (
                name, modulus, len(active), len(self.expected))

        ok, detail, _ = kube.wait_for(name, ready, self.p["ready_timeout"], every=2.0)
        if not ok:
            raise Failed("shard %d not Ready with the new configuration within %.0f s: %s" % (
                shard, self.p["ready_timeout"], detail))
        self.step(detail)

    def shard_objects(self, shard, modulus, base_sts, config):
        """A new shard's ConfigMap and StatefulSet (dicts)."""
        cm_name = shards_.configmap_name(self.base_cm, self.base, shard)
        text = self.yaml.safe_dump(shards_.render(config, shard, modulus), sort_keys=False)
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": cm_name, "namespace": self.ns,
                           "labels": {shards_.SHARD_KEY: str(shard)}},
              "data": {self.p["configmap_key"]: text}}
        annotations = (self.p["shard_pod_annotations"] or {}).get(str(shard)) or {}
        sts = shards_.shard_statefulset(base_sts, shard, cm_name, annotations)
        sts.update(apiVersion="apps/v1", kind="StatefulSet")
        return cm, sts

    def shard_config(self, shard, modulus, config, unsharded):
        """(text, annotations patch) of an existing shard's ConfigMap at `modulus`: shard 0
        keeps its unsharded file in an annotation and gets it back, byte for byte, at 1."""
        if modulus == 1 and shard == 0:
            return unsharded, {shards_.UNSHARDED: None}
        text = self.yaml.safe_dump(shards_.render(config, shard, modulus), sort_keys=False)
        return text, ({shards_.UNSHARDED: unsharded} if shard == 0 else None)

    def create_shard(self, shard, modulus, base_sts, config):
        cm, sts = self.shard_objects(shard, modulus, base_sts, config)
        self.core.create_namespaced_config_map(self.ns, cm)
        self.created.append(shard)
        self.apps.create_namespaced_stateful_set(self.ns, sts)
        self.step("created %s and %s" % (cm["metadata"]["name"], sts["metadata"]["name"]))

    def drained(self, shard):
        """Wait until the shard's queues sent everything they ingested."""
        name = shards_.statefulset_name(self.base, shard)
        _, pods = kube.statefulset_pods(self.api_client, self.ns, name)
        if not pods:
            return
        pod = pods[0].metadata.name

        def empty():
            try:
                text = kube.proxy_get(self.api_client, self.ns, pod, self.p["http_port"],
                                      "metrics", timeout=self.p["timeout"])
            except Exception as exc:
                return False, str(exc).splitlines()[0][:120]
            return agent_health.queue_drained(promtext.parse(text))

        ok, detail, _ = kube.wait_for("%s drained" % name, empty, self.p["drain_timeout"])
        if not ok:
            raise Failed("%s did not drain its remote-write queue within %.0f s (%s): not"
                         " removed, nothing dropped" % (name, self.p["drain_timeout"], detail))
        self.step("%s drained (%s)" % (name, detail))

    def remove_shard(self, shard):
        name = shards_.statefulset_name(self.base, shard)
        self.apps.delete_namespaced_stateful_set(name, self.ns)
        self.core.delete_namespaced_config_map(
            shards_.configmap_name(self.base_cm, self.base, shard), self.ns)

        def gone():
            pods = [p for p in self.core.list_namespaced_pod(
                self.ns, label_selector="%s=%d" % (shards_.SHARD_KEY, shard)).items
                if p.metadata.name.startswith(name + "-")]
            return not pods, "%d pods left" % len(pods)

        kube.wait_for("%s gone" % name, gone, self.p["ready_timeout"])
        self.step("removed %s (its claim is kept)" % name)

    # ---------------------------------------------------------------- procedure
    def run(self, check_mode):
        from kubernetes.client import ApiClient

        found = self.current()
        before, want = len(found), int(self.p["shards"])
        base_sts = ApiClient().sanitize_for_serialization(found[0])
        self.base_cm = self.base_configmap(found[0])
        cm, text = self.read_config(self.base_cm)
        unsharded = (cm.metadata.annotations or {}).get(shards_.UNSHARDED) or text
        config = self.yaml.safe_load(unsharded) or {}
        _, pods0 = kube.statefulset_pods(self.api_client, self.ns, self.base)
        if not pods0 or not kube.is_ready(pods0[0]):
            raise Failed("shard 0 (%s) is not Ready: fix it first" % self.base)
        every, current = set(), {}
        for shard in found:
            _, pods = kube.statefulset_pods(self.api_client, self.ns,
                                            shards_.statefulset_name(self.base, shard))
            if pods:
                active, dropped = self.targets(pods[0].metadata.name)
                every.update(active + dropped)
                current[shard] = active
        targets = sorted(every)
        self.expected = targets
        moves = shards_.moves(current, targets, want)
        result = {"before": before, "after": want, "targets": targets,
                  "assignment": dict((str(k), v) for k, v in
                                     shards_.assignment(targets, want).items()),
                  "moves": ["%s: %s -> %d" % (t, ",".join(str(s) for s in now) or "none", to)
                            for t, now, to in moves],
                  "steps": self.steps, "changed": want != before}
        if want == before:
            self.step("already %d shard(s)" % want)
            return result
        plan = self.plan(before, want)
        if check_mode:
            self.steps.extend("would " + s for s in plan)
            result["diff"] = self.predict(before, want, base_sts, config, unsharded)
            return result
        try:
            if want > before:
                for shard in range(before, want):
                    self.create_shard(shard, want, base_sts, config)
                for shard in range(before, want):
                    self.wait_shard(shard, want)
                self.reconfigure(range(before), want, config, unsharded)
            else:
                self.reconfigure(range(want), want, config, unsharded)
                # Every surplus shard drained before any goes: a failed drain rolls back to
                # the shards as they were, all still there.
                for shard in range(before - 1, want - 1, -1):
                    self.drained(shard)
                for shard in range(before - 1, want - 1, -1):
                    self.remove_shard(shard)
        except Exception as exc:
            self.rollback(before, config, unsharded)
            result.update(after=before, failed=True, rolled_back=True,
                          msg="%s; rolled back to %d shard(s)" % (exc, before))
        return result

    def predict(self, before, want, base_sts, config, unsharded):
        """Check mode: every object the run would write, each accepted by the API server in a
        server-side dry run (schema, admission, RBAC), as Ansible diff entries."""
        diff = []

        def entry(kind, name, before_text, after_text):
            header = "%s %s/%s" % (kind, self.ns, name)
            diff.append({"before_header": header, "after_header": header,
                         "before": before_text, "after": after_text})

        for shard in range(before, want):
            cm, sts = self.shard_objects(shard, want, base_sts, config)
            self.core.create_namespaced_config_map(self.ns, cm, dry_run="All")
            self.apps.create_namespaced_stateful_set(self.ns, sts, dry_run="All")
            entry("ConfigMap", cm["metadata"]["name"], "", self.yaml.safe_dump(cm))
            entry("StatefulSet", sts["metadata"]["name"], "", self.yaml.safe_dump(sts))
        for shard in range(min(before, want)):
            name = shards_.configmap_name(self.base_cm, self.base, shard)
            _, old = self.read_config(name)
            text, annotations = self.shard_config(shard, want, config, unsharded)
            body = {"data": {self.p["configmap_key"]: text}}
            if annotations is not None:
                body["metadata"] = {"annotations": annotations}
            self.core.patch_namespaced_config_map(name, self.ns, body, dry_run="All")
            entry("ConfigMap", name, old, text)
        for shard in range(want, before):
            sts_name = shards_.statefulset_name(self.base, shard)
            cm_name = shards_.configmap_name(self.base_cm, self.base, shard)
            _, old = self.read_config(cm_name)
            self.apps.delete_namespaced_stateful_set(sts_name, self.ns, dry_run="All")
            self.core.delete_namespaced_config_map(cm_name, self.ns, dry_run="All")
            entry("ConfigMap", cm_name, old, "")
            entry("StatefulSet", sts_name, "(1 replica)", "")
        self.step("the API server accepted every change in a server-side dry run (%d objects)"
                  % len(diff))
        return diff

    def plan(self, before, want):
        if want > before:
            return (["create %s (ConfigMap and StatefulSet, modulus %d)" % (
                shards_.statefulset_name(self.base, s), want) for s in range(before, want)]
                + ["reconfigure %s to modulus %d and restart it" % (
                    shards_.statefulset_name(self.base, s), want) for s in range(before)])
        return (["reconfigure %s to modulus %d and restart it" % (
            shards_.statefulset_name(self.base, s), want) for s in range(want)]
            + ["drain, then remove %s" % shards_.statefulset_name(self.base, s)
               for s in range(before - 1, want - 1, -1)])

    def reconfigure(self, shards, modulus, config, unsharded):
        for shard in shards:
            name = shards_.configmap_name(self.base_cm, self.base, shard)
            text, annotations = self.shard_config(shard, modulus, config, unsharded)
            self.put_config(name, text, annotations)
            self.step("%s: modulus %d" % (name, modulus))
            self.restart(shard, modulus)

    def rollback(self, before, config, unsharded):
        """ConfigMaps back, reconfigured shards restarted onto them, created shards gone."""
        for shard in sorted(self.created, reverse=True):
            name = shards_.statefulset_name(self.base, shard)
            with contextlib.suppress(Exception):
                self.apps.delete_namespaced_stateful_set(name, self.ns)
            with contextlib.suppress(Exception):
                self.core.delete_namespaced_config_map(
                    shards_.configmap_name(self.base_cm, self.base, shard), self.ns)
            self.step("rollback: removed %s" % name)
        for name, (data, saved_annotations) in self.saved.items():
            restore = dict((k, saved_annotations.get(k)) for k in [shards_.UNSHARDED])
            self.core.patch_namespaced_config_map(name, self.ns, {
                "data": data, "metadata": {"annotations": restore}})
            shard = 0 if name == self.base_cm else int(name.split("-shard-")[1].split("-")[0])
            loaded = shards_.modulus_of(self.yaml.safe_load(
                data.get(self.p["configmap_key"]) or "") or {})
            self.restart(shard, loaded)
            self.step("rollback: %s restored (modulus %d)" % (name, loaded))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["shards"] < 1:
        module.fail_json(msg="shards must be >= 1, got %d" % params["shards"])
    try:
        scaler = Scaler(kube.connect(params), params)
        result = scaler.run(module.check_mode)
    except Failed as exc:
        module.fail_json(msg=str(exc), steps=[])
    except kube.KubeFailure as failure:
        module.fail_json(**failure.result())
    except Exception as exc:  # ApiException and the like, before any change
        module.fail_json(msg="%s: %s" % (type(exc).__name__, str(exc).splitlines()[0][:400]))
    if not result.get("msg"):
        result["msg"] = "%s; targets per shard: %s; moves (target: shards now -> shard): %s" % (
            "; ".join(result["steps"]) or "nothing to do",
            "; ".join("%s: %s" % (k, ", ".join(v) or "none")
                      for k, v in sorted(result["assignment"].items())),
            "; ".join(result["moves"]) or "none")
    if not module._diff:
        result.pop("diff", None)
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
