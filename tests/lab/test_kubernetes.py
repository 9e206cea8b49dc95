"""The lab's Kubernetes part against its promises: the platform's objects synced from git,
pods that are the lab's processes (started, stopped after their flush, restarted, fed their
ConfigMaps), reached through the API server's pod proxy, and RBAC that refuses what the
`watchkeeper` Role does not grant. Real etcd, kube-apiserver, controller-manager, scheduler
and KWOK; the node agent is the one stand-in (for the kubelet)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring import config_hash
from watchkeeper_lab import Lab, build, platform, topology

from tests.lab.test_lab import poll

pytestmark = pytest.mark.lab
NS = "monitoring"


def api(lab: Lab) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(lab.kubeconfig),
                                         context=platform.OBSERVABILITY)


def core(lab: Lab) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api(lab))


def apps(lab: Lab) -> Any:
    from kubernetes import client

    return client.AppsV1Api(api(lab))


def kubectl(lab: Lab, *args: str) -> str:
    binary = build.ensure(build.load_specs()["kubectl"], print)
    proc = subprocess.run([str(binary), f"--kubeconfig={lab.kubeconfig}",
                           f"--context={platform.OBSERVABILITY}", *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def receivers(lab: Lab) -> dict[str, Any]:
    pods = core(lab).list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/name=thanos-receive").items
    return {p.metadata.name: p for p in pods}


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def proxied(lab: Lab, pod: str, port: int, path: str) -> str:
    """GET through the API server's pod proxy, as a runbook reads a pod's metrics."""
    return str(core(lab).connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:{port}", NS, path, _preload_content=True))


def test_platform_objects_come_from_the_gitops_tree(lab: Lab) -> None:
    sts = apps(lab).read_namespaced_stateful_set("thanos-receive", NS)
    assert sts.spec.replicas == topology.RECEIVERS
    # Synced from git by the lab's ArgoCD (its server-side apply field manager).
    assert "argocd-controller" in {f.manager for f in sts.metadata.managed_fields}
    service = core(lab).read_namespaced_service("thanos-receive", NS)
    assert service.spec.cluster_ip == "None"  # headless: one DNS name per receiver
    from kubernetes import client

    pdb = client.PolicyV1Api(api(lab)).read_namespaced_pod_disruption_budget(
        "thanos-receive", NS)
    assert pdb.spec.max_unavailable == 1
    claims = core(lab).list_namespaced_persistent_volume_claim(NS).items
    bound = {c.metadata.name for c in claims if c.status.phase == "Bound"}
    assert {f"data-thanos-receive-{i}" for i in range(topology.RECEIVERS)} <= bound
    applications = client.CustomObjectsApi(api(lab)).list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications")["items"]
    names = {a["metadata"]["name"] for a in applications}
    assert "observability-thanos-receive" in names
    assert {f"{c}-prometheus-agent" for c in topology.CLUSTERS} <= names
    for cluster in topology.CLUSTERS:
        agent = apps(lab).read_namespaced_stateful_set("prometheus-agent", cluster)
        assert agent.status.ready_replicas == 1
    # Every receiver pod is Ready and its IP is where its own process answers.
    for name, pod in receivers(lab).items():
        assert is_ready(pod), name
        assert http_ok(f"http://{pod.status.pod_ip}:10902/-/ready"), name


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def test_pod_proxy_reaches_each_receivers_own_process(lab: Lab) -> None:
    for i in range(topology.RECEIVERS):
        text = proxied(lab, f"thanos-receive-{i}", 10902, "metrics")
        assert "thanos_receive_config_hash" in text
        # The very process listening on that pod's IP: same start time, same PID's metrics.
        ip = lab.addresses.receiver(i)
        with urllib.request.urlopen(f"http://{ip}:10902/metrics", timeout=5) as response:
            direct = response.read().decode()
        assert (_metric(text, "process_start_time_seconds")
                == _metric(direct, "process_start_time_seconds"))


def test_server_side_dry_run_predicts_and_changes_nothing(lab: Lab) -> None:
    before = apps(lab).read_namespaced_stateful_set("thanos-receive", NS)
    predicted = apps(lab).patch_namespaced_stateful_set(
        "thanos-receive", NS, {"spec": {"replicas": 5}}, dry_run="All")
    assert predicted.spec.replicas == 5
    after = apps(lab).read_namespaced_stateful_set("thanos-receive", NS)
    assert after.spec.replicas == topology.RECEIVERS
    assert after.metadata.resource_version == before.metadata.resource_version
    time.sleep(3)
    assert len(receivers(lab)) == topology.RECEIVERS


def test_watchkeeper_service_account_is_refused_what_its_role_does_not_grant(
    lab: Lab,
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    token = core(lab).create_namespaced_service_account_token(
        "watchkeeper", NS, {"spec": {"expirationSeconds": 600}}).status.token
    configuration = client.Configuration()
    configuration.host = f"https://{lab.addresses.apiserver}:6443"
    configuration.verify_ssl = False
    configuration.api_key = {"authorization": f"Bearer {token}"}
    limited = client.ApiClient(configuration)
    sa_core = client.CoreV1Api(limited)
    # Granted: read pods, read a receiver's metrics through the pod proxy, scale.
    assert sa_core.list_namespaced_pod(NS).items
    assert "thanos_receive" in str(sa_core.connect_get_namespaced_pod_proxy_with_path(
        "thanos-receive-0:10902", NS, "metrics"))
    for refused in (
        lambda: sa_core.delete_namespaced_config_map("thanos-receive-hashring", NS),
        lambda: sa_core.list_namespaced_secret(NS),
        lambda: sa_core.list_namespaced_pod(topology.CLUSTERS[0]),
        lambda: client.AppsV1Api(limited).delete_namespaced_stateful_set("thanos-receive", NS),
    ):
        with pytest.raises(ApiException) as caught:
            refused()
        assert caught.value.status == 403
    assert len(receivers(lab)) == topology.RECEIVERS  # nothing was deleted


def test_hashring_configmap_change_reaches_every_receiver(lab: Lab) -> None:
    cm = core(lab).read_namespaced_config_map("thanos-receive-hashring", NS)
    original = cm.data["hashrings.json"]
    ring = json.loads(original)
    ring[0]["endpoints"] = list(reversed(ring[0]["endpoints"]))  # same members, new file
    changed = json.dumps(ring, indent=2) + "\n"
    want = config_hash(changed.encode())
    assert want != config_hash(original.encode())

    def reported() -> dict[str, float]:
        found = {}
        for i in range(topology.RECEIVERS):
            for line in proxied(lab, f"thanos-receive-{i}", 10902, "metrics").splitlines():
                if line.startswith("thanos_receive_config_hash "):
                    found[f"thanos-receive-{i}"] = float(line.split()[1])
        return found

    core(lab).patch_namespaced_config_map("thanos-receive-hashring", NS,
                                          {"data": {"hashrings.json": changed}})
    try:
        converged = poll("every receiver to report the new ring's hash",
                         lambda: (lambda r: r if set(r.values()) == {want} else None)(
                             reported()), 120, 2)
        assert len(converged) == topology.RECEIVERS
    finally:
        core(lab).patch_namespaced_config_map("thanos-receive-hashring", NS,
                                              {"data": {"hashrings.json": original}})
        poll("the original ring back", lambda: set(reported().values()) == {
            config_hash(original.encode())}, 120, 2)


def test_scale_to_four_starts_a_receiver_and_back_to_three_stops_it_after_flush(
    lab: Lab,
) -> None:
    scale = apps(lab).patch_namespaced_stateful_set_scale
    scale("thanos-receive", NS, {"spec": {"replicas": 4}})
    try:
        fourth = poll("a 4th Ready receive pod",
                      lambda: (lambda p: p if p and is_ready(p) else None)(
                          receivers(lab).get("thanos-receive-3")), 120, 1)
        ip = lab.addresses.receiver(3)
        assert fourth.status.pod_ip == ip
        assert http_ok(f"http://{ip}:10902/-/ready")
        assert "thanos_receive" in proxied(lab, "thanos-receive-3", 10902, "metrics")
        record = lab.pod_records()[f"{NS}/thanos-receive-3"]
        log_path = record["log"]
    finally:
        scale("thanos-receive", NS, {"spec": {"replicas": topology.RECEIVERS}})
    poll("thanos-receive-3 gone from the API",
         lambda: "thanos-receive-3" not in receivers(lab), 180, 1)
    assert not http_ok(f"http://{ip}:10902/-/ready")
    assert f"{NS}/thanos-receive-3" not in lab.pod_records()
    # Stopped by SIGTERM, flushed its head and uploaded the final block before it exited
    # (Thanos's own log lines), not killed at the deadline.
    text = Path(log_path).read_text()
    for line in ("caught signal. Exiting.", "storage is flushed successfully",
                 "the final cut block was uploaded"):
        assert line in text, text[-3000:]
    # Its volume is kept (Retain): a scale-down never drops a receiver's data.
    claim = core(lab).read_namespaced_persistent_volume_claim("data-thanos-receive-3", NS)
    assert claim.status.phase == "Bound"


def test_rollout_restart_restarts_every_receiver_process(lab: Lab) -> None:
    before = {n: p.status.container_statuses[0].container_id for n, p in receivers(lab).items()}
    kubectl(lab, "-n", NS, "rollout", "restart", "statefulset/thanos-receive")
    kubectl(lab, "-n", NS, "rollout", "status", "statefulset/thanos-receive", "--timeout=480s")
    after = receivers(lab)
    assert set(after) == set(before)
    for name, pod in after.items():
        assert is_ready(pod), name
        assert pod.status.container_statuses[0].container_id != before[name], name
        assert http_ok(f"http://{pod.status.pod_ip}:10902/-/ready"), name


def test_a_killed_pod_process_is_restarted_like_a_container(lab: Lab) -> None:
    import os
    import signal

    record = lab.pod_records()[f"{NS}/alertmanager-0"]
    os.kill(int(record["pid"]), signal.SIGKILL)

    def restarted() -> Any:
        pod = core(lab).read_namespaced_pod("alertmanager-0", NS)
        status = pod.status.container_statuses[0]
        return pod if status.restart_count >= 1 and is_ready(pod) else None

    pod = poll("alertmanager-0 restarted and Ready", restarted, 90, 1)
    assert pod.status.container_statuses[0].container_id != f"lab://{record['pid']}"
