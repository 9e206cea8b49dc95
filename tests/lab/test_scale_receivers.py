"""scale-receivers against the lab's real receivers, API server and bucket: the safe order up
and down, the final block verified before a claim is released, writes never interrupted
(counted with the canary series), and a receiver that dies mid scale-up rolled back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.test_hashring import endpoints, playbook_steps, reported_hash, ring_text
from tests.lab.test_kubernetes import NS, apps, core, is_ready, receivers
from tests.lab.test_lab import poll

pytestmark = pytest.mark.lab
SCRAPE_SECONDS = 5  # the lab agents' scrape interval: one canary sample per 5 s per cluster


def run_scale(lab: Lab, tmp_path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    result = cli("run", "scale-receivers", "-i", str(lab.inventory_dir), "--limit",
                 "observability", "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    journal = json.loads((run_dir / "journal.json").read_text())
    return result, journal


def canary_samples(lab: Lab, cluster: str, start: float, end: float) -> int:
    """Distinct canary sample times of `cluster` in Query over [start, end], across every
    replica's copy (dedup off: Thanos's penalty dedup skips samples when it switches
    replicas, which a ring change makes it do; the union of the raw copies is what was
    stored)."""
    window = int(end - start)
    query = f'watchkeeper_lab_canary_total{{cluster="{cluster}"}}[{window}s]'
    url = (f"http://{lab.addresses.query}:10902/api/v1/query?"
           + urllib.parse.urlencode({"query": query, "time": f"{end:.3f}", "dedup": "false"}))
    with urllib.request.urlopen(url, timeout=20) as response:
        rows = json.load(response)["data"]["result"]
    return len({float(t) for row in rows for t, _ in row["values"]})


def wait_canary_past(lab: Lab, end: float, deadline_s: float = 60.0) -> None:
    """Until every cluster's newest canary sample in Query is a scrape past `end`: the
    window's last samples have arrived (an agent sends its samples in order)."""
    url = (f"http://{lab.addresses.query}:10902/api/v1/query?" + urllib.parse.urlencode(
        {"query": "max by (cluster) (timestamp(watchkeeper_lab_canary_total))"}))
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=20) as response:
            rows = json.load(response)["data"]["result"]
        newest = {r["metric"].get("cluster"): float(r["value"][1]) for r in rows}
        if all(newest.get(c, 0.0) >= end + SCRAPE_SECONDS for c in topology.CLUSTERS):
            return
        time.sleep(1)


def assert_no_canary_gap(lab: Lab, start: float, end: float) -> None:
    wait_canary_past(lab, end)
    expected = (end - start) / SCRAPE_SECONDS
    for cluster in topology.CLUSTERS:
        got = canary_samples(lab, cluster, start, end)
        # +-1 for the window's edges; anything more is samples lost.
        assert got >= expected - 1, f"{cluster}: {got} canary samples, expected {expected:.0f}"


def replicas(lab: Lab) -> int:
    return int(apps(lab).read_namespaced_stateful_set("thanos-receive", NS).spec.replicas)


@pytest.fixture
def three(lab: Lab, tmp_path: Path) -> Any:
    """Three Ready receivers, all in the ring (an earlier test's fault may still be healing:
    wait for it rather than fail on it)."""
    assert replicas(lab) == topology.RECEIVERS
    deadline = time.monotonic() + 300
    while not all(is_ready(p) for p in receivers(lab).values()):
        assert time.monotonic() < deadline, "receivers not all Ready before the test"
        time.sleep(2)
    if len(endpoints(lab)) != topology.RECEIVERS:
        healed = cli("run", "hashring", "-i", str(lab.inventory_dir), "--limit",
                     "observability", env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "st"),
                                           **lab.env()})
        assert healed.returncode == 0, healed.stdout
    yield
    if replicas(lab) != topology.RECEIVERS:
        result, _ = run_scale(lab, tmp_path / "restore", "-e", f"replicas={topology.RECEIVERS}")
        assert result.returncode == 0, result.stdout


def test_check_mode_gives_the_plan_and_changes_nothing(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    ring = ring_text(lab)
    result, journal = run_scale(lab, tmp_path, "-e", "replicas=4", "--check")
    assert result.returncode == 0, result.stdout
    step = playbook_steps(journal)[0]
    assert "scale thanos-receive 3 -> 4" in step["message"], step
    assert "ring: add thanos-receive-3" in step["message"]
    assert replicas(lab) == 3 and ring_text(lab) == ring
    assert "thanos-receive-3" not in receivers(lab)


def test_fewer_receivers_than_the_replication_factor_are_refused(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    result, journal = run_scale(lab, tmp_path, "-e", "replicas=1")
    assert result.returncode == 3, result.stdout
    assert "replication factor 2" in journal["message"]
    assert replicas(lab) == 3


def test_up_then_down_in_the_safe_order_without_losing_a_sample(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    start = time.time()
    result, journal = run_scale(lab, tmp_path, "-e", "replicas=4")
    assert result.returncode == 0, result.stdout
    step = next(s for s in playbook_steps(journal) if s["status"] == "changed")
    # StatefulSet first, Ready, only then the ring.
    order = [part.split()[0] for part in step["message"].split(": ", 1)[1].split("; ")]
    assert order == ["statefulset", "ready", "ring"], step["message"]
    ip = lab.addresses.receiver(3)
    assert f"{ip}:10901" in endpoints(lab)
    want = reported_hash(lab, "thanos-receive-0")
    assert all(reported_hash(lab, f"thanos-receive-{i}") == want for i in range(4))
    post = [s for s in journal["steps"] if s["phase"] == "post-gate"]
    assert [s["name"] for s in post] == ["steady state", "canary"], post
    assert {s["status"] for s in post} == {"ok"}, post

    result, journal = run_scale(lab, tmp_path, "-e", "replicas=3", "-e", "release_pvcs=true")
    end = time.time()
    try:
        assert result.returncode == 0, result.stdout
        step = next(s for s in playbook_steps(journal) if s["status"] == "changed")
        order = [part.split()[0] for part in step["message"].split(": ", 1)[1].split("; ")]
        # Ring before StatefulSet; the final block verified before the claim is released.
        assert order == ["ring", "statefulset", "terminated", "upload", "release"], order
        assert f"{ip}:10901" not in endpoints(lab)
        assert "thanos-receive-3" not in receivers(lab)
        claims = {c.metadata.name for c in core(lab).list_namespaced_persistent_volume_claim(
            NS).items}
        assert "data-thanos-receive-3" not in claims
    finally:
        _make_volume_reusable(lab, "data-thanos-receive-3")
    assert_no_canary_gap(lab, start, end)


def _make_volume_reusable(lab: Lab, claim: str) -> None:
    """A lab admin's chore: a Released (Retain) volume is re-offered to a new claim of the
    same name (the next scale-up), as a storage provisioner would provide a new one."""
    from kubernetes import client

    pv_name = f"lab-{NS}-{claim}"
    api = client.CoreV1Api(core(lab).api_client)
    pv = api.read_persistent_volume(pv_name)
    if pv.status.phase == "Released":
        api.patch_persistent_volume(pv_name, {"spec": {"claimRef": {
            "uid": None, "resourceVersion": None, "namespace": NS, "name": claim}}})


def test_a_receiver_dying_mid_scale_up_is_rolled_back_without_losing_a_sample(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    ring = ring_text(lab)
    stop = threading.Event()
    kills: list[int] = []

    def crash_loop() -> None:  # kill the new receiver each time its process comes up
        while not stop.wait(0.3):
            record = lab.pod_records().get(f"{NS}/thanos-receive-3")
            if record and record["pid"] not in kills:
                try:
                    os.kill(int(record["pid"]), signal.SIGKILL)
                    kills.append(record["pid"])
                except ProcessLookupError:
                    pass

    killer = threading.Thread(target=crash_loop, daemon=True)
    start = time.time()
    killer.start()
    try:
        result, journal = run_scale(lab, tmp_path, "-e", "replicas=4", "-e",
                                    "ready_timeout=30")
    finally:
        stop.set()
        killer.join()
    end = time.time()
    assert kills, "the fault was never injected"
    assert result.returncode == 1, result.stdout
    failed = [s for s in playbook_steps(journal) if s["status"] == "failed"]
    assert "thanos-receive-3 not Ready" in failed[0]["message"], failed
    rollback = [s for s in journal["steps"] if s["phase"] == "rollback"]
    assert rollback and rollback[-1]["status"] in ("ok", "changed"), rollback
    assert replicas(lab) == 3
    assert ring_text(lab) == ring
    assert "thanos-receive-3" not in receivers(lab)
    assert_no_canary_gap(lab, start, end)


def git_replicas(lab: Lab) -> int | None:
    bare = lab.dir / "git" / "platform.git"
    text = subprocess.run(
        ["git", "--git-dir", str(bare), "show",
         "main:clusters/observability/thanos-receive/kustomization.yaml"],
        capture_output=True, text=True, check=True).stdout
    entries = yaml.safe_load(text).get("replicas") or []
    return next((int(e["count"]) for e in entries if e["name"] == "thanos-receive"), None)


@pytest.mark.auto_sync
def test_gitops_mode_scales_through_git_so_a_sync_keeps_the_new_size(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    """With ArgoCD syncing from git, a direct `kubectl scale` is undone at the next sync
    while the ring still lists the new receiver. In gitops mode the replicas go through git:
    the lab's ArgoCD syncs the commit, and afterwards git holds the new size and the
    Application is Synced at it (nothing left for a sync to undo)."""
    result, journal = run_scale(lab, tmp_path, "-e", "replicas=4", "-e", "mode=gitops",
                                "--check")
    assert result.returncode == 0, result.stdout
    message = playbook_steps(journal)[0]["message"]
    assert "commit replicas 4 to clusters/observability/thanos-receive/kustomization.yaml" \
        in message, message
    assert replicas(lab) == 3 and git_replicas(lab) in (None, 3)  # check mode: no commit
    before = lab.git_head()

    try:
        result, journal = run_scale(lab, tmp_path, "-e", "replicas=4", "-e", "mode=gitops")
        assert result.returncode == 0, (result.stdout, journal.get("message"))
        assert lab.git_head() != before, "nothing was committed to git"
        assert git_replicas(lab) == 4
        assert replicas(lab) == 4
        assert f"{lab.addresses.receiver(3)}:10901" in endpoints(lab)
        head = lab.git_head()
        poll("the receivers' Application Synced at the new commit",
             lambda: application_state(lab, "observability-thanos-receive") == ("Synced", head),
             90, 1)
        assert replicas(lab) == 4  # git is the truth, and it agrees
    finally:
        result, journal = run_scale(lab, tmp_path, "-e", "replicas=3", "-e", "mode=gitops")
        _make_volume_reusable(lab, "data-thanos-receive-3")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert git_replicas(lab) == 3 and replicas(lab) == 3
    assert f"{lab.addresses.receiver(3)}:10901" not in endpoints(lab)


def application_state(lab: Lab, name: str) -> tuple[str, str]:
    from watchkeeper_lab import argocd

    state = argocd.summary(argocd.custom_api(lab.kubeconfig).get_namespaced_custom_object(
        argocd.GROUP, argocd.VERSION, argocd.NAMESPACE, "applications", name))
    return state["sync"], state["revision"]


def test_gitops_mode_without_the_replicas_path_is_refused_before_any_change(
    lab: Lab, tmp_path: Path, three: None
) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(lab.inventory_dir, inventory)
    host = inventory / "host_vars" / "observability.yml"
    values = yaml.safe_load(host.read_text())
    values.pop("wk_receive_replicas_git_path")
    host.write_text(yaml.safe_dump(values))
    result = cli("run", "scale-receivers", "-i", str(inventory), "--limit", "observability",
                 "--run-dir", str(tmp_path / "run"), "-e", "replicas=4", "-e", "mode=gitops",
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    assert result.returncode == 3, result.stdout
    assert "wk_receive_replicas_git_path" in result.stdout + result.stderr
    assert replicas(lab) == 3
