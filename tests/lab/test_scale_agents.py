"""scale-agents against the lab: the real API server, real Prometheus agents (Debian's build)
sharded by hashmod, and Thanos Query counting the series per job before and after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_shards

from runbooks.lab import Lab, topology
from tests.lab.test_checklists import inventory_with
from tests.lab.test_kubernetes import api, core, kubectl
from tests.lab.test_receiver_agent_health import run

pytestmark = pytest.mark.lab
CLUSTER = topology.CLUSTERS[1]
CM = "prometheus-agent-config"


def shard_sets(lab: Lab) -> list[str]:
    from kubernetes import client

    return sorted(s.metadata.name for s in client.AppsV1Api(api(lab)).list_namespaced_stateful_set(
        CLUSTER).items if s.metadata.name.startswith("prometheus-agent"))


def config(lab: Lab) -> str:
    return str(core(lab).read_namespaced_config_map(CM, CLUSTER).data["prometheus.yml"])


def targets_of(lab: Lab, pod: str) -> tuple[list[str], list[str]]:
    body = json.loads(core(lab).connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:9090", CLUSTER, "api/v1/targets", _preload_content=False).data)["data"]
    return (sorted(t["discoveredLabels"]["__address__"] for t in body["activeTargets"]),
            sorted(t["discoveredLabels"]["__address__"] for t in body["droppedTargets"]))


def playbook_message(journal: dict[str, Any]) -> str:
    return next(s["message"] for s in journal["steps"] if s["phase"] == "playbook")


@pytest.fixture
def one_shard(lab: Lab) -> Iterator[str]:
    """The agent as deployed (one shard, its ConfigMap as git has it), whatever the test did."""
    original = config(lab)
    assert shard_sets(lab) == ["prometheus-agent"]
    yield original
    for name in shard_sets(lab):
        if name != "prometheus-agent":
            kubectl(lab, "-n", CLUSTER, "delete", "statefulset", name, "--wait=true")
            kubectl(lab, "-n", CLUSTER, "delete", "configmap", f"{name}-config",
                    "--ignore-not-found")
    if config(lab) != original:
        core(lab).patch_namespaced_config_map(CM, CLUSTER, {"data": {"prometheus.yml": original}})
        kubectl(lab, "-n", CLUSTER, "delete", "pod", "prometheus-agent-0")


def test_check_mode_predicts_the_assignment_and_changes_nothing(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    active, dropped = targets_of(lab, "prometheus-agent-0")
    predicted = agent_shards.assignment(active + dropped, 3)
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=3", "--check")
    assert result.returncode == 0, result.stdout
    message = playbook_message(journal)
    assert "would create prometheus-agent-shard-1" in message
    assert "would create prometheus-agent-shard-2" in message
    assert "would reconfigure prometheus-agent to modulus 3" in message
    for shard, addresses in predicted.items():
        assert f"{shard}: {', '.join(addresses) or 'none'}" in message, message
    assert shard_sets(lab) == ["prometheus-agent"] and config(lab) == one_shard


def test_two_shards_share_the_targets_then_one_takes_them_back(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    active, _ = targets_of(lab, "prometheus-agent-0")
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2",
                          "-e", "allow_drift=true")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert shard_sets(lab) == ["prometheus-agent", "prometheus-agent-shard-1"]
    # What the real agents scrape is what our hashmod predicted: the same hash as Prometheus.
    predicted = agent_shards.assignment(active, 2)
    assert targets_of(lab, "prometheus-agent-0")[0] == predicted[0]
    assert targets_of(lab, "prometheus-agent-shard-1-0")[0] == predicted[1]
    gates = {s["name"]: s for s in journal["steps"] if s["phase"] == "post-gate"}
    assert gates["targets partitioned"]["status"] == "ok"
    assert gates["series per job"]["status"] == "ok"
    assert "as before" in gates["series per job"]["message"]

    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=1",
                          "-e", "allow_drift=true")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    message = playbook_message(journal)
    assert message.index("prometheus-agent-config: modulus 1") < \
        message.index("prometheus-agent-shard-1 drained") < \
        message.index("removed prometheus-agent-shard-1"), message
    assert shard_sets(lab) == ["prometheus-agent"]
    assert config(lab) == one_shard  # exactly the file git has: no drift for ArgoCD to see
    assert targets_of(lab, "prometheus-agent-0")[0] == active
    claims = [c.metadata.name for c in core(lab).list_namespaced_persistent_volume_claim(
        CLUSTER).items]
    assert "data-prometheus-agent-shard-1-0" in claims  # its WAL is kept


def test_a_shard_that_cannot_start_is_rolled_back(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    """The fault: shard 1's pod address is shard 0's, so its Prometheus cannot bind and never
    becomes Ready; the run fails and leaves the agent as it was."""
    taken = {"1": {"lab.watchkeeper.io/ip": lab.addresses.agent(1)}}
    inventory = inventory_with(lab, tmp_path, CLUSTER, wk_agent_shard_pod_annotations=taken)
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2",
                          "-e", "allow_drift=true", "-e", "ready_timeout=40",
                          inventory=inventory)
    assert result.returncode == 1, result.stdout
    message = playbook_message(journal)
    assert "shard 1 not Ready" in message and "rolled back to 1 shard(s)" in message, message
    assert shard_sets(lab) == ["prometheus-agent"]
    assert config(lab) == one_shard


def test_bad_input_is_refused_before_any_change(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    result, _ = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=0")
    assert result.returncode == 2 and "shards" in result.stderr + result.stdout
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2")
    assert result.returncode != 0
    assert "wk_agent_application" in journal["message"] and "allow_drift" in journal["message"]
    inventory = inventory_with(lab, tmp_path, CLUSTER, wk_kube_context="")
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2",
                          "-e", "allow_drift=true", inventory=inventory)
    assert result.returncode != 0
    assert shard_sets(lab) == ["prometheus-agent"] and config(lab) == one_shard
