"""scale-prometheus against the lab: the observability cluster's Prometheus server StatefulSet
(real Prometheus, Debian's build, each pod's `replica` label its pod name), run by the real API
server, remote-writing to the real receivers, and Thanos Query deduplicating the replicas."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, topology

from tests.lab.helpers import firewalled, port_taken
from tests.lab.test_checklists import inventory_with
from tests.lab.test_kubernetes import core, kubectl
from tests.lab.test_lab import poll
from tests.lab.test_receiver_agent_health import run
from tests.lab.test_scale_agents import playbook_message

pytestmark = pytest.mark.lab
CLUSTER = "observability"
NS = "monitoring"
STS = "prometheus"
SELECTOR = 'up{cluster="observability",replica=~"prometheus-[0-9]+"}'


def replicas(lab: Lab) -> int:
    from kubernetes import client

    from tests.lab.test_kubernetes import api

    return int(client.AppsV1Api(api(lab)).read_namespaced_stateful_set(STS, NS).spec.replicas)


def pods(lab: Lab) -> list[str]:
    return sorted(p.metadata.name for p in core(lab).list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/name=prometheus").items
        if p.metadata.deletion_timestamp is None)


def loaded_replica_label(lab: Lab, pod: str) -> str:
    body = json.loads(core(lab).connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:9090", NS, "api/v1/status/config", _preload_content=False).data)
    return str(yaml.safe_load(body["data"]["yaml"])["global"]["external_labels"]["replica"])


def query(lab: Lab, promql: str, dedup: bool) -> list[dict[str, Any]]:
    import urllib.parse
    import urllib.request

    url = (f"http://{lab.addresses.query}:10902/api/v1/query?"
           + urllib.parse.urlencode({"query": promql, "dedup": str(dedup).lower()}))
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.loads(response.read())["data"]["result"])


def per_job(lab: Lab) -> dict[str, str]:
    return {r["metric"]["job"]: r["value"][1]
            for r in query(lab, f"count by (job) ({SELECTOR})", dedup=True)}


@pytest.fixture
def one_replica(lab: Lab) -> Iterator[None]:
    """The HA set as deployed (one replica), whatever the test did."""
    assert replicas(lab) == 1
    yield
    if replicas(lab) != 1:
        kubectl(lab, "-n", NS, "scale", "statefulset", STS, "--replicas=1")


def test_check_mode_prints_the_plan_and_changes_nothing(
        lab: Lab, tmp_path: Path, one_replica: None) -> None:
    result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=2",
                          "--check")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    message = playbook_message(journal)
    assert "would scale StatefulSet prometheus to 2 replicas" in message, message
    assert "would prometheus-1 Ready, its replica label its pod name" in message, message
    assert "accepted the scale to 2 in a server-side dry run" in message, message
    assert replicas(lab) == 1 and pods(lab) == ["prometheus-0"]


def test_two_replicas_are_deduplicated_by_query_then_one_is_drained_and_removed(
        lab: Lab, tmp_path: Path, one_replica: None) -> None:
    before = per_job(lab)
    assert before and all(v == "1" for v in before.values()), before  # one series per target

    result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=2")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert replicas(lab) == 2 and pods(lab) == ["prometheus-0", "prometheus-1"]
    # Each replica's own label, as its Prometheus loaded it: the pods are told apart.
    assert [loaded_replica_label(lab, p) for p in pods(lab)] == ["prometheus-0", "prometheus-1"]
    # Query holds both copies, and deduplicated there is still one series per target.
    copies = {r["metric"]["replica"] for r in query(lab, SELECTOR, dedup=False)}
    assert copies == {"prometheus-0", "prometheus-1"}
    assert per_job(lab) == before
    gates = {s["name"]: s for s in journal["steps"] if s["phase"] == "post-gate"}
    assert gates["replicas in Query"]["status"] == "ok", gates
    assert gates["deduplicated series"]["status"] == "ok", gates

    result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=1")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    message = playbook_message(journal)
    assert message.index("prometheus-1 drained") < \
        message.index("StatefulSet prometheus scaled to 1"), message
    assert replicas(lab) == 1 and pods(lab) == ["prometheus-0"]
    assert per_job(lab) == before
    claims = [c.metadata.name for c in core(lab).list_namespaced_persistent_volume_claim(
        NS).items]
    assert "data-prometheus-1" in claims  # its TSDB is kept


def test_a_replica_that_cannot_start_is_rolled_back(
        lab: Lab, tmp_path: Path, one_replica: None) -> None:
    """The fault: prometheus-1's address and port are taken (a socket this test holds), so
    its Prometheus cannot bind and never becomes Ready; the run scales back to one."""
    address = lab.addresses.prometheus_replica(1)
    with port_taken(lab, address, 9090):
        result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=2",
                              "-e", "ready_timeout=30")
    assert result.returncode == 1, result.stdout
    message = playbook_message(journal)
    assert "prometheus not at 2 Ready replicas" in message, message
    assert "rolled back to 1 replica(s)" in message, message
    assert replicas(lab) == 1 and pods(lab) == ["prometheus-0"]


def test_a_failed_post_gate_rolls_back_but_never_drops_an_undrained_replica(
        lab: Lab, tmp_path: Path, one_replica: None) -> None:
    """The fault: once the run has scaled the StatefulSet (after the pre-gate found the set
    delivering), the receiver the servers remote-write to drops their connections (an nftables
    rule on its remote-write port). The new replica comes up labelled and scraping, but its
    series never reach Query: the post-gate fails and the rollback goes back to one replica.
    prometheus-1 holds every sample it scraped, so the rollback refuses to remove it until
    its queue drains; once the block is lifted, scaling down drains it and removes it."""
    if lab.podnet is None or shutil.which("nft") is None:
        pytest.skip("blocking remote write needs the pod network (root) and nft")
    block = firewalled(lab, lab.addresses.receiver(topology.RECEIVERS - 1), 19291)
    armed, stop = threading.Event(), threading.Event()

    def arm_when_scaled() -> None:
        while not stop.is_set():
            if replicas(lab) == 2:
                block.__enter__()
                armed.set()
                return
            time.sleep(0.3)

    watcher = threading.Thread(target=arm_when_scaled, daemon=True)
    watcher.start()
    try:
        result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=2",
                              "-e", "settle_timeout=15", "-e", "drain_timeout=15")
        assert armed.is_set(), "the run never scaled the StatefulSet"
        assert result.returncode == 3, result.stdout  # a post-gate failed
        gates = {s["name"]: s for s in journal["steps"] if s["phase"] == "post-gate"}
        assert gates["replicas in Query"]["status"] == "failed", gates
        missing = gates["replicas in Query"]["message"].split("missing ")[1].split(",")
        assert "prometheus-1" in [m.strip() for m in missing], gates
        rollback = next(s for s in journal["steps"] if s["phase"] == "rollback")
        assert rollback["status"] == "failed", rollback
        assert "prometheus-1 did not drain its remote-write queue" in rollback["message"]
        assert "nothing dropped; left at 2 replica(s)" in rollback["message"], rollback
        assert pods(lab) == ["prometheus-0", "prometheus-1"]  # kept, with its samples
    finally:
        stop.set()
        watcher.join(10)
        if armed.is_set():
            block.__exit__(None, None, None)
    # Unblocked, both replicas deliver again (the pre-gate requires it), then one goes.
    poll("both replicas fresh in Query again", lambda: sorted(
        r["metric"]["replica"] for r in query(
            lab, f"count by (replica) (timestamp({SELECTOR}) > time() - 30)", dedup=False)
    ) == ["prometheus-0", "prometheus-1"], 240, 3)
    result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=1")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert "prometheus-1 drained (pending 0" in playbook_message(journal)
    assert pods(lab) == ["prometheus-0"]


def test_bad_input_is_refused_before_any_change(
        lab: Lab, tmp_path: Path, one_replica: None) -> None:
    result, _ = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=0")
    assert result.returncode == 2 and "replicas" in result.stderr + result.stdout
    # A cluster that names no Prometheus server StatefulSet.
    result, _ = run(lab, tmp_path, "scale-prometheus", "k8s-cluster-01", "-e", "replicas=2")
    assert result.returncode == 2
    assert "wk_prometheus_statefulset" in result.stderr + result.stdout
    # Replicas told apart by a label their configuration does not set: refused by the
    # pre-gate, which names the pod, the label and how to set it.
    inventory = inventory_with(lab, tmp_path, CLUSTER, wk_prometheus_replica_label="prom_replica")
    result, journal = run(lab, tmp_path, "scale-prometheus", CLUSTER, "-e", "replicas=2",
                          inventory=inventory)
    assert result.returncode == 3, result.stdout  # a pre-gate failed: nothing changed
    gate = next(s for s in journal["steps"] if s["phase"] == "pre-gate")
    assert "prometheus-0 has no external label 'prom_replica'" in gate["message"], gate
    assert "expand-external-labels" in gate["message"]
    assert replicas(lab) == 1
