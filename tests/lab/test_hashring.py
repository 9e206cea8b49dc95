"""The hashring runbook against the lab's real receivers and API server: the predicted ring in
check mode, refusal of a ring that would break quorum, proof of convergence read from every
receiver's own thanos_receive_config_hash, the GitOps path through a real commit, and the
rollback when a receiver keeps its old ring."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring import config_hash
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.test_kubernetes import NS, core, proxied

pytestmark = pytest.mark.lab
DELAY = "lab.watchkeeper.io/configmap-delay-seconds"


def ring_text(lab: Lab) -> str:
    cm = core(lab).read_namespaced_config_map("thanos-receive-hashring", NS)
    return str(cm.data["hashrings.json"])


def endpoints(lab: Lab) -> list[str]:
    return list(json.loads(ring_text(lab))[-1]["endpoints"])


def reported_hash(lab: Lab, pod: str) -> float:
    for line in proxied(lab, pod, 10902, "metrics").splitlines():
        if line.startswith("thanos_receive_config_hash "):
            return float(line.split()[1])
    raise AssertionError(f"{pod} exports no thanos_receive_config_hash")


def run_hashring(lab: Lab, tmp_path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    result = cli("run", "hashring", "-i", str(lab.inventory_dir), "--limit", "observability",
                 "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    journal = json.loads((run_dir / "journal.json").read_text())
    return result, journal


def playbook_steps(journal: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in journal["steps"] if s["phase"] == "playbook"]


@pytest.fixture
def full_ring(lab: Lab, tmp_path: Path) -> Any:
    """Every test starts and ends with the catch-all ring over the three receivers."""
    all_three = [f"{lab.addresses.receiver(i)}:10901" for i in range(topology.RECEIVERS)]
    assert sorted(endpoints(lab)) == sorted(all_three)
    yield all_three
    for i in range(topology.RECEIVERS):
        core(lab).patch_namespaced_pod(f"thanos-receive-{i}", NS,
                                       {"metadata": {"annotations": {DELAY: None}}})
    if sorted(endpoints(lab)) != sorted(all_three):
        result, _ = run_hashring(lab, tmp_path / "restore")
        assert result.returncode == 0, result.stdout


def test_check_mode_predicts_the_ring_and_changes_nothing(
    lab: Lab, tmp_path: Path, full_ring: list[str]
) -> None:
    before = ring_text(lab)
    result, journal = run_hashring(lab, tmp_path, "--check", "--diff", "-e",
                                   "members=[thanos-receive-0,thanos-receive-1]")
    assert result.returncode == 0, result.stdout
    step = playbook_steps(journal)[0]
    assert step["message"].startswith("would apply (direct mode)"), step
    assert f"-{full_ring[2]}" in step["message"]
    assert ring_text(lab) == before


def test_a_ring_smaller_than_the_replication_factor_is_refused_before_applying(
    lab: Lab, tmp_path: Path, full_ring: list[str]
) -> None:
    before = ring_text(lab)
    result, journal = run_hashring(lab, tmp_path, "-e", "members=[thanos-receive-0]")
    assert result.returncode == 1
    failed = [s for s in playbook_steps(journal) if s["status"] == "failed"]
    assert "replication factor 2" in failed[-1]["message"], failed
    assert ring_text(lab) == before


def test_apply_proves_every_receiver_loaded_the_new_ring_then_back(
    lab: Lab, tmp_path: Path, full_ring: list[str]
) -> None:
    result, journal = run_hashring(lab, tmp_path, "-e",
                                   "members=[thanos-receive-0,thanos-receive-1]")
    assert result.returncode == 0, result.stdout
    assert endpoints(lab) == full_ring[:2]
    want = config_hash(ring_text(lab).encode())
    for i in range(topology.RECEIVERS):  # the proof the runbook gave, checked independently
        assert reported_hash(lab, f"thanos-receive-{i}") == want
    step = next(s for s in playbook_steps(journal) if s["status"] == "changed")
    assert "proven on 3 receiver(s)" in step["message"], step
    assert {c["status"] for c in step["checks"]} == {"ok"} and len(step["checks"]) == 3

    result, _ = run_hashring(lab, tmp_path)  # no members: every Ready receiver
    assert result.returncode == 0, result.stdout
    assert sorted(endpoints(lab)) == sorted(full_ring)


def test_a_receiver_that_keeps_its_old_ring_fails_the_proof_and_the_ring_is_rolled_back(
    lab: Lab, tmp_path: Path, full_ring: list[str]
) -> None:
    before = ring_text(lab)
    # Reproduce the kubelet's ConfigMap propagation lag on one receiver only.
    core(lab).patch_namespaced_pod("thanos-receive-2", NS,
                                   {"metadata": {"annotations": {DELAY: "600"}}})
    result, journal = run_hashring(lab, tmp_path, "-e",
                                   "members=[thanos-receive-0,thanos-receive-1]",
                                   "-e", "converge_timeout=25")
    assert result.returncode == 1, result.stdout
    failed = [s for s in playbook_steps(journal) if s["status"] == "failed"]
    message = failed[-1]["message"]
    assert "thanos-receive-2" in message and "no convergence" in message, message
    assert "thanos-receive-0" not in message.split("lag")[0]  # only the laggard is named
    assert "previous ring restored and proven" in message, message
    assert ring_text(lab) == before
    assert reported_hash(lab, "thanos-receive-0") == config_hash(before.encode())


@pytest.mark.auto_sync
def test_gitops_mode_commits_the_ring_and_proves_it_after_the_sync(
    lab: Lab, tmp_path: Path, full_ring: list[str]
) -> None:
    """The lab's ArgoCD syncs the commit (automated sync, polling git); the runbook waits for
    the ring to reach the receivers and proves it."""
    bare = lab.dir / "git" / "platform.git"

    def head() -> str:
        return subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "main"],
                              capture_output=True, text=True, check=True).stdout.strip()

    start = head()
    result, _journal = run_hashring(lab, tmp_path, "-e", "mode=gitops", "-e",
                                   "members=[thanos-receive-0,thanos-receive-1]")
    assert result.returncode == 0, result.stdout
    assert head() != start
    log = subprocess.run(["git", "--git-dir", str(bare), "log", "-1", "--format=%s", "main"],
                         capture_output=True, text=True, check=True).stdout
    assert log.startswith("hashring: observability by watchkeeper run"), log
    assert endpoints(lab) == full_ring[:2]
    # Back to three receivers through git as well, so the GitOps source stays the truth.
    result, _ = run_hashring(lab, tmp_path, "-e", "mode=gitops")
    assert result.returncode == 0, result.stdout
    assert sorted(endpoints(lab)) == sorted(full_ring)
