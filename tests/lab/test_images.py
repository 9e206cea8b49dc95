"""Image tags are honoured: a pod runs the lab's build of the version its image tag names
(Thanos v0.40.1 or v0.38.0, Prometheus 2.42 or 3.16), and a tag the lab has no build of
never starts: the container waits in ErrImagePull / ImagePullBackOff, as with a registry
that does not have it. What the upgrade runbooks stand on."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from watchkeeper_lab import Lab, build

NAMESPACE = "lab-images"
#: Free addresses of the lab's /24 (the platform uses .5-.80).
THANOS_OLD_IP, PROMETHEUS_V3_IP, UNKNOWN_IP = 91, 92, 93


@pytest.fixture(scope="module")
def api(lab: Lab) -> Iterator[Any]:
    core = lab.core_api()
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    clean(core)  # a kept lab may hold an interrupted run's objects
    yield core
    clean(core)


def clean(core: Any) -> None:
    for pod in core.list_namespaced_pod(NAMESPACE).items:
        core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    for cm in core.list_namespaced_config_map(NAMESPACE).items:
        if cm.metadata.name != "kube-root-ca.crt":
            core.delete_namespaced_config_map(cm.metadata.name, NAMESPACE)
    deadline = time.monotonic() + 60
    while core.list_namespaced_pod(NAMESPACE).items and time.monotonic() < deadline:
        time.sleep(0.5)


def pod(lab: Lab, name: str, image: str, last: int, args: list[str], port: int,
        ready_path: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"lab.watchkeeper.io/ip":
                                                   lab.addresses.ip(last)}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "main", "image": image, "args": args,
                "ports": [{"name": "http", "containerPort": port}],
                "readinessProbe": {"httpGet": {"path": ready_path, "port": "http"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def metrics(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def wait_ready(api: Any, name: str, deadline_s: float = 90.0) -> Any:
    deadline = time.monotonic() + deadline_s
    current = None
    while time.monotonic() < deadline:
        current = api.read_namespaced_pod(name, NAMESPACE)
        if any(c.type == "Ready" and c.status == "True"
               for c in current.status.conditions or []):
            return current
        time.sleep(1.0)
    raise AssertionError(f"{name} not Ready in {deadline_s} s: {current and current.status}")


def built(name: str) -> None:
    """The background build of a second version (waits for it if it is under way)."""
    build.ensure(build.load_specs()[name], print)


def test_a_pod_runs_the_thanos_version_its_tag_names(lab: Lab, api: Any) -> None:
    built("thanos-previous")
    api.create_namespaced_pod(NAMESPACE, pod(
        lab, "thanos-old", "quay.io/thanos/thanos:v0.38.0", THANOS_OLD_IP,
        ["query", "--http-address=0.0.0.0:10902", "--grpc-address=0.0.0.0:10901"], 10902,
        "/-/ready"))
    running = wait_ready(api, "thanos-old")
    ip = running.status.pod_ip
    text = metrics(f"http://{ip}:10902/metrics")
    info = next(line for line in text.splitlines() if line.startswith("thanos_build_info{"))
    assert 'version="0.38.0"' in info, info
    # The platform's own receivers, tagged v0.40.1, still run v0.40.1 beside it.
    text = metrics(f"http://{lab.addresses.receiver(0)}:10902/metrics")
    assert 'version="0.40.1"' in next(
        line for line in text.splitlines() if line.startswith("thanos_build_info{"))
    status = {c.name: c for c in lab.status().components}
    assert status[f"pod/{NAMESPACE}/thanos-old"].version == "0.38.0"


def test_a_pod_runs_prometheus_3_when_its_tag_says_so(lab: Lab, api: Any) -> None:
    built("prometheus-v3")
    api.create_namespaced_config_map(NAMESPACE, {
        "metadata": {"name": "prometheus-v3"},
        "data": {"prometheus.yml": "global:\n  scrape_interval: 15s\n"}})
    spec = pod(lab, "prometheus-v3", "quay.io/prometheus/prometheus:v3.16.0", PROMETHEUS_V3_IP,
               ["--config.file=/config/prometheus.yml", "--storage.tsdb.path=/data",
                "--web.listen-address=0.0.0.0:9090"], 9090, "/-/ready")
    spec["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "config", "mountPath": "/config"})
    spec["spec"]["volumes"].append({"name": "config", "configMap": {"name": "prometheus-v3"}})
    api.create_namespaced_pod(NAMESPACE, spec)
    running = wait_ready(api, "prometheus-v3")
    info = get_json(f"http://{running.status.pod_ip}:9090/api/v1/status/buildinfo")["data"]
    assert info["version"].startswith("3.16."), info
    assert get_json(f"http://{lab.addresses.agent(0)}:9090/api/v1/status/buildinfo")[
        "data"]["version"].startswith("2.42"), "the agents' 2.42 tag no longer runs 2.42"


def test_an_unknown_tag_never_starts_and_shows_image_pull_backoff(lab: Lab, api: Any) -> None:
    api.create_namespaced_pod(NAMESPACE, pod(
        lab, "thanos-unknown", "quay.io/thanos/thanos:v9.9.9", UNKNOWN_IP,
        ["query", "--http-address=0.0.0.0:10902"], 10902, "/-/ready"))
    reasons: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "ImagePullBackOff" not in reasons:
        current = api.read_namespaced_pod("thanos-unknown", NAMESPACE)
        for status in current.status.container_statuses or []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason and waiting.reason not in reasons:
                reasons.append(waiting.reason)
                message = waiting.message
        time.sleep(0.5)
    assert reasons[:2] == ["ErrImagePull", "ImagePullBackOff"], reasons
    assert "v9.9.9" in message and "v0.40.1" in message, message  # names what the lab has
    assert current.status.phase == "Pending"
    assert f"{NAMESPACE}/thanos-unknown" not in lab.pod_records(), "a process was started"
    events = api.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=thanos-unknown").items
    assert any(e.reason == "Failed" and "Failed to pull image" in e.message for e in events)
