"""tune-resources against the lab: a recommendation grounded in the agent's real usage, read
from Thanos Query, shown as a diff; nothing changed; a wrong workload named."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import resources as res
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.test_kubernetes import apps

pytestmark = pytest.mark.lab
CLUSTER = topology.CLUSTERS[0]


def run(lab: Lab, tmp_path: Path, *args: str) -> tuple[int, dict]:
    run_dir = tmp_path / "run"
    result = cli("run", "tune-resources", "-i", str(lab.inventory_dir), "--limit", CLUSTER,
                 "--run-dir", str(run_dir), "--output", "json", "--diff", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    return result.returncode, json.loads((run_dir / "journal.json").read_text())


def agent_rss(lab: Lab) -> float:
    with urllib.request.urlopen(f"http://{lab.addresses.agent(0)}:9090/metrics") as response:
        for line in response.read().decode().splitlines():
            if line.startswith("process_resident_memory_bytes "):
                return float(line.split()[1])
    raise AssertionError("agent exports no process_resident_memory_bytes")


def test_recommendation_follows_observed_usage_and_changes_nothing(
    lab: Lab, tmp_path: Path
) -> None:
    before = apps(lab).read_namespaced_stateful_set("prometheus-agent", CLUSTER)
    code, journal = run(lab, tmp_path, "-e", "window=10m")
    assert code == 0, journal.get("message")
    step = next(s for s in journal["steps"] if s["phase"] == "playbook")
    message = step["message"]
    assert message.startswith("StatefulSet/prometheus-agent prometheus:"), message
    request = res.parse_memory(message.split("memory ", 1)[1].split(",")[0])
    rss = agent_rss(lab)
    # p95 of the agent's own resident memory x 1.2: close to what it uses right now.
    assert 0.8 * rss <= request <= 2.0 * rss, (request, rss)
    assert step["diff_summary"].startswith("+")  # the agent sets no resources today
    after = apps(lab).read_namespaced_stateful_set("prometheus-agent", CLUSTER)
    assert after.metadata.resource_version == before.metadata.resource_version


def test_a_wrong_workload_is_named(lab: Lab, tmp_path: Path) -> None:
    code, journal = run(lab, tmp_path, "-e", "workload=prometheus-agnet")
    assert code == 1
    failed = [s for s in journal["steps"] if s["status"] == "failed"]
    assert "prometheus-agnet" in failed[0]["message"] and "not found" in failed[0]["message"]
