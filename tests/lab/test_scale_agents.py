"""scale-agents against the lab: the real API server, real Prometheus agents (Debian's build)
sharded by hashmod, and Thanos Query counting the series per job before and after."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_shards
from watchkeeper_lab import Lab, topology

from tests.lab.helpers import firewalled
from tests.lab.test_checklists import inventory_with
from tests.lab.test_kubernetes import api, core, kubectl
from tests.lab.test_receiver_agent_health import run

pytestmark = pytest.mark.lab
CLUSTER = topology.CLUSTERS[0]
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
    assert len(active) >= 4  # enough targets for sharding to mean something
    predicted = agent_shards.assignment(active + dropped, 3)
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=3", "--check",
                          "--diff")
    assert result.returncode == 0, result.stdout
    message = playbook_message(journal)
    assert "would create prometheus-agent-shard-1" in message
    assert "would create prometheus-agent-shard-2" in message
    assert "would reconfigure prometheus-agent to modulus 3" in message
    # The API server validated the objects (server-side dry run) and created none of them.
    assert "accepted every change in a server-side dry run (5 objects)" in message, message
    for shard, addresses in predicted.items():
        assert f"{shard}: {', '.join(addresses) or 'none'}" in message, message
    # Every target leaving shard 0 is named with where it goes.
    for shard in (1, 2):
        for target in predicted[shard]:
            assert f"{target}: 0 -> {shard}" in message, message
    playbook = next(s for s in journal["steps"] if s["phase"] == "playbook")
    assert "StatefulSet " + CLUSTER + "/prometheus-agent-shard-2" in playbook["diff_summary"]
    assert "ConfigMap " + CLUSTER + "/prometheus-agent-config" in playbook["diff_summary"]
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
    taken = {"1": {"lab.watchkeeper.io/ip": lab.addresses.agent(0)}}
    inventory = inventory_with(lab, tmp_path, CLUSTER, wk_agent_shard_pod_annotations=taken)
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2",
                          "-e", "allow_drift=true", "-e", "ready_timeout=40",
                          inventory=inventory)
    assert result.returncode == 1, result.stdout
    message = playbook_message(journal)
    assert "shard 1 not Ready" in message and "rolled back to 1 shard(s)" in message, message
    assert shard_sets(lab) == ["prometheus-agent"]
    assert config(lab) == one_shard


def test_a_failed_post_gate_rolls_back_and_drains_the_surplus_shard_first(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    """The fault: the cluster's receiver stops taking remote write (an nftables rule drops
    TCP to its remote-write port) as the run starts. The pre-gate still passes (the lag is
    under the threshold), the shards become Ready and scrape, but none delivers: the post-gate
    fails and the rollback scales back to one shard. The rollback will not remove shard 1
    while its queue holds samples: it waits until the test lifts the block, then drains."""
    if shutil.which("nft") is None:
        pytest.skip("blocking remote write needs nft (scripts/setup.sh installs nftables)")
    url = next(line.split("url:")[1].strip() for line in one_shard.splitlines()
               if "url:" in line)
    host, port = url.split("//")[1].split("/")[0].split(":")
    rolled_back = threading.Event()

    def lift_when_rolled_back() -> None:
        # The rollback restores shard 0's file while shard 1 still exists (it drains first).
        deadline, sharded = time.monotonic() + 600, False
        while time.monotonic() < deadline:
            text = config(lab)
            sharded = sharded or text != one_shard
            if sharded and text == one_shard:
                rolled_back.set()
                return
            time.sleep(1)

    watcher = threading.Thread(target=lift_when_rolled_back, daemon=True)
    with firewalled(lab, host, int(port)):
        watcher.start()
        result: list[Any] = []
        runner = threading.Thread(target=lambda: result.append(run(
            lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2", "-e", "allow_drift=true",
            "-e", "settle_timeout=20")), daemon=True)
        runner.start()
        assert rolled_back.wait(600), "the rollback never restored shard 0's configuration"
        assert "prometheus-agent-shard-1" in shard_sets(lab)  # not removed while undrained
    runner.join(600)
    (completed, journal) = result[0]
    assert completed.returncode != 0, completed.stdout
    gates = {s["name"]: s for s in journal["steps"] if s["phase"] == "post-gate"}
    assert gates["shards delivering"]["status"] == "failed"
    assert "prometheus-agent-shard-1-0" in gates["shards delivering"]["message"]
    rollback = next(s for s in journal["steps"] if s["phase"] == "rollback")
    assert rollback["status"] in ("ok", "changed"), rollback
    assert rollback["message"].index("prometheus-agent-shard-1 drained") < \
        rollback["message"].index("removed prometheus-agent-shard-1"), rollback["message"]
    assert shard_sets(lab) == ["prometheus-agent"] and config(lab) == one_shard


def test_bad_input_is_refused_before_any_change(
        lab: Lab, tmp_path: Path, one_shard: str) -> None:
    result, _ = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=0")
    assert result.returncode == 2 and "shards" in result.stderr + result.stdout
    result, _ = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=1", "-e", "replicas=2")
    assert result.returncode == 2
    assert "agents are sharded, not HA-replicated" in result.stderr + result.stdout
    beyond = topology.AGENT_SHARDS + 1  # more shards than the lab's address plan has
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", f"shards={beyond}",
                          "-e", "allow_drift=true")
    assert result.returncode != 0
    assert "wk_agent_shard_pod_annotations has no entry for shard(s) 4" in journal["message"]
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2")
    assert result.returncode != 0
    assert "wk_agent_application" in journal["message"] and "allow_drift" in journal["message"]
    inventory = inventory_with(lab, tmp_path, CLUSTER, wk_kube_context="")
    result, journal = run(lab, tmp_path, "scale-agents", CLUSTER, "-e", "shards=2",
                          "-e", "allow_drift=true", inventory=inventory)
    assert result.returncode != 0 and "wk_kube_context" in result.stdout + result.stderr
    assert shard_sets(lab) == ["prometheus-agent"] and config(lab) == one_shard
