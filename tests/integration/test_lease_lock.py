"""Per-cluster locks as Kubernetes Leases, against a real etcd + kube-apiserver (built from the
registries by the lab's build code)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from watchkeeper_lab.controlplane import ControlPlane

from tests.conftest import NAMESPACE, REPO, cli
from tests.integration.test_engine import FIXTURES, _wait_for


@pytest.fixture
def kube_inventory(apiserver: ControlPlane, tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "tests" / "fixtures" / "inventory", inventory)
    (inventory / "host_vars").mkdir()
    for cluster, namespace in (("cluster-a", NAMESPACE), ("cluster-b", "monitoring-b")):
        (inventory / "host_vars" / f"{cluster}.yml").write_text(yaml.safe_dump({
            "wk_kube_context": cluster, "wk_kubeconfig": str(apiserver.kubeconfig),
            "wk_namespace": namespace}))
    return inventory


def _lease(apiserver: ControlPlane, namespace: str = NAMESPACE):
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = client.CoordinationV1Api(config.new_client_from_config(
        config_file=str(apiserver.kubeconfig)))
    try:
        return api.read_namespaced_lease("watchkeeper-lock", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_mutating_run_holds_a_lease_and_a_second_run_is_locked(
    apiserver: ControlPlane, kube_inventory: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), **FIXTURES, **state_env}
    first = subprocess.Popen(
        [str(Path(sys.executable).parent / "watchkeeper"), "run", "fixture-write", "-i",
         str(kube_inventory), "--run-dir", str(tmp_path / "first"), "-e",
         f"target_dir={target}", "-e", "sleep_seconds=30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (target / "cluster-a.txt").exists(), "the first run's change")
        lease = _lease(apiserver)
        assert lease is not None and lease.spec.holder_identity
        assert lease.metadata.annotations["watchkeeper.io/runbook"] == "fixture-write"
        assert _lease(apiserver, "monitoring-b") is not None  # one Lease per cluster

        second = cli("run", "fixture-write", "-i", str(kube_inventory), "--run-dir",
                     str(tmp_path / "second"), "-e", f"target_dir={target}",
                     env={**FIXTURES, **state_env})
        assert second.returncode == 4, second.stderr
        assert (f"locked by fixture-write run {lease.spec.holder_identity} since"
                in second.stderr)
        assert f"Lease {NAMESPACE}/watchkeeper-lock" in second.stderr
        assert not (Path(state_env["WATCHKEEPER_STATE_DIR"]) / "locks").exists()
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    assert _lease(apiserver) is None  # released, rollback done
    assert json.loads((tmp_path / "first" / "journal.json").read_text())["status"] == \
        "interrupted"


def test_expired_lease_of_a_dead_run_is_taken_over(
    apiserver: ControlPlane, kube_inventory: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config(
        config_file=str(apiserver.kubeconfig)))
    stale = datetime.now(UTC) - timedelta(minutes=10)
    api.create_namespaced_lease(NAMESPACE, client.V1Lease(
        metadata=client.V1ObjectMeta(name="watchkeeper-lock", annotations={
            "watchkeeper.io/runbook": "scale-receivers",
            "watchkeeper.io/since": stale.isoformat()}),
        spec=client.V1LeaseSpec(holder_identity="dead-run", lease_duration_seconds=120,
                                acquire_time=stale, renew_time=stale)))
    target = tmp_path / "target"
    target.mkdir()
    result = cli("run", "fixture-write", "-i", str(kube_inventory), "--run-dir",
                 str(tmp_path / "run"), "-e", f"target_dir={target}",
                 env={**FIXTURES, **state_env})
    assert result.returncode == 0, result.stderr
    assert _lease(apiserver) is None
