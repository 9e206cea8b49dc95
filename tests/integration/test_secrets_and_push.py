"""Secrets from Ansible Vault end to end, and run metrics pushed to a real Pushgateway
(Debian's prometheus-pushgateway)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import AGENT_PASSWORD, REPO, Process, PromPair, cli, free_port, wait_ready

pytestmark = pytest.mark.prometheus


def _vault_encrypt(value: str, password: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    return vault.encrypt(value).decode()


def test_vault_secret_is_used_and_never_written(
    prom_pair: PromPair, tmp_path: Path, state_env: dict[str, str]
) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(prom_pair.inventory, inventory)
    vault_password = "vault-pw-for-test"
    (tmp_path / "vault-pass").write_text(vault_password + "\n")
    encrypted = _vault_encrypt(AGENT_PASSWORD, vault_password)
    host_vars = inventory / "host_vars" / "k8s-cluster-01.yml"
    indented = "\n".join("      " + line for line in encrypted.splitlines())
    host_vars.write_text(
        host_vars.read_text().replace(
            "  password: {env: WK_TEST_AGENT_PASSWORD}\n", f"  password: !vault |\n{indented}\n"
        )
    )
    shown = cli("inventory", "show", "-i", str(inventory), "--output", "json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)["clusters"]["k8s-cluster-01"]
    assert view["agent_auth"]["password"] == "!vault"

    run_dir = tmp_path / "run"
    result = cli("run", "status", "-i", str(inventory), "--run-dir", str(run_dir),
                 "-e", "rate_window=1", "--vault-password-file", str(tmp_path / "vault-pass"),
                 env=state_env)
    assert result.returncode == 0, result.stdout + result.stderr
    leaking = [str(p) for p in run_dir.rglob("*")
               if p.is_file() and AGENT_PASSWORD.encode() in p.read_bytes()]
    assert leaking == []


def test_run_metrics_reach_a_real_pushgateway(tmp_path: Path, state_env: dict[str, str]) -> None:
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("Debian's prometheus-pushgateway is not installed (.ci/run installs it)")
    port = free_port()
    gateway = Process("pushgateway", [binary, f"--web.listen-address=127.0.0.1:{port}",
                                      f"--persistence.file={tmp_path / 'pushgateway.data'}"],
                      tmp_path / "pushgateway.log")
    gateway.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready")
        result = cli("run", "ping", "-i", str(REPO / "tests" / "fixtures" / "inventory"),
                     "--run-dir", str(tmp_path / "run"), "--pushgateway",
                     f"http://127.0.0.1:{port}", env=state_env)
        assert result.returncode == 0, result.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        lines = [line for line in text.splitlines()
                 if line.startswith("watchkeeper_runbook_success{")]
        assert any('cluster="cluster-a"' in line and 'runbook="ping"' in line
                   and line.endswith(" 1") for line in lines), lines
        stamp = [line for line in text.splitlines()
                 if line.startswith("watchkeeper_runbook_last_success_timestamp_seconds{")
                 and 'cluster="cluster-b"' in line]
        assert stamp and abs(float(stamp[0].split()[-1]) - time.time()) < 120
    finally:
        gateway.stop()


def _gateway_values(port: int) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("runbook") == "fixture-write":
                values[(sample.name, sample.labels["cluster"])] = sample.value
    return values


def test_a_failed_scheduled_run_keeps_the_last_success_in_the_pushgateway(
    tmp_path: Path, state_env: dict[str, str]
) -> None:
    """A CronJob runs each time in a fresh pod (no textfile of the previous run). A failure on
    one cluster must not erase that cluster's last success timestamp in the gateway, or the
    "no successful backup in 26 h" alert would fire, or never fire, for the wrong reason."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("Debian's prometheus-pushgateway is not installed (.ci/run installs it)")
    port = free_port()
    gateway = Process("pushgateway", [binary, f"--web.listen-address=127.0.0.1:{port}",
                                      f"--persistence.file={tmp_path / 'pushgateway.data'}"],
                      tmp_path / "pushgateway.log")
    gateway.start()
    target = tmp_path / "target"
    target.mkdir()
    env = {"WATCHKEEPER_RUNBOOK_MODULES": "tests.fixtures.sample_runbooks"}

    def run(name: str, *extra: str) -> dict:
        pod = tmp_path / name  # a fresh pod: its own state and textfile directories
        cli("run", "fixture-write", "-i", str(REPO / "tests" / "fixtures" / "inventory"),
            "--run-dir", str(pod / "run"), "--textfile-dir", str(pod / "textfile"),
            "--pushgateway", f"http://127.0.0.1:{port}", "-e", f"target_dir={target}", *extra,
            env={**env, "WATCHKEEPER_STATE_DIR": str(pod / "state")})
        return json.loads((pod / "run" / "journal.json").read_text())

    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready")
        good = run("good")
        assert good["status"] == "successful", good.get("message")
        first = _gateway_values(port)
        bad = run("bad", "-e", "fail_on=cluster-a")
        assert bad["clusters"]["cluster-a"] == "failed"
        after = _gateway_values(port)
    finally:
        gateway.stop()
    stamp = "watchkeeper_runbook_last_success_timestamp_seconds"
    assert after[("watchkeeper_runbook_success", "cluster-a")] == 0
    assert after[(stamp, "cluster-a")] == first[(stamp, "cluster-a")]  # kept, not erased
    assert after[(stamp, "cluster-b")] > first[(stamp, "cluster-b")]  # b succeeded again
    assert after[("watchkeeper_runbook_last_run_timestamp_seconds", "cluster-a")] > \
        first[(stamp, "cluster-a")]
