"""Inventory schema: every problem is reported with cluster, field, expected, found and file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from runbooks.inventory import check_inventory, load_inventory
from tests.conftest import REPO, cli

EXAMPLE = REPO / "inventory" / "example"


def test_example_inventory_is_valid_and_resolves_group_precedence():
    inventory = load_inventory(EXAMPLE)
    names = {c.name for c in inventory.clusters}
    assert {"obs-eu-west-1", "k8s-prod-eu-01", "k8s-stg-eu-01"} <= names
    staging = inventory.cluster("k8s-stg-eu-01")
    prod = inventory.cluster("k8s-prod-eu-01")
    assert staging.threshold_remote_write_lag_seconds == 300  # group_vars/staging.yml
    assert prod.threshold_remote_write_lag_seconds == 120  # group_vars/all.yml
    assert prod.region == "eu-west-1"
    assert [c.name for c in inventory.select("us_east")] == ["k8s-prod-us-01"]


def test_example_has_no_plain_text_secret():
    for cluster in load_inventory(EXAMPLE).clusters:
        for _, ref in cluster.secrets():
            assert ref.kind in ("env", "vault")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    target = tmp_path / "inv"
    shutil.copytree(EXAMPLE, target)
    host = target / "host_vars" / "k8s-prod-eu-02.yml"
    host.write_text(host.read_text().replace(
        "wk_agent_url: http://prometheus-agent.monitoring.svc:9090",
        "wk_agent_url: prometheus-agent:9090",
    ).replace("password: {env: WK_AGENT_PASSWORD}", "password: hunter2-plain"))
    group = target / "group_vars" / "staging.yml"
    group.write_text(group.read_text() + "wk_threshold_failed_ratio: 7\nwk_agnet_url: http://x\n")
    return target


def test_check_lists_every_problem_with_its_file(broken: Path):
    inventory, problems = check_inventory(broken)
    assert inventory is None
    found = {(p.cluster, p.field): p for p in problems}
    url = found[("k8s-prod-eu-02", "wk_agent_url")]
    assert "http(s) URL" in url.expected and "prometheus-agent:9090" in url.found
    assert url.source.endswith("host_vars/k8s-prod-eu-02.yml")
    secret = found[("k8s-prod-eu-02", "wk_agent_auth.password")]
    assert "plain-text secret" in secret.expected and "{env: VAR_NAME}" in secret.expected
    assert "hunter2-plain" not in secret.found  # a secret is never echoed back
    ratio = found[("k8s-stg-eu-01", "wk_threshold_failed_ratio")]
    assert ratio.source.endswith("group_vars/staging.yml") and ratio.found == "7"
    typo = found[("k8s-stg-eu-01", "wk_agnet_url")]
    assert "did you mean wk_agent_url" in typo.expected


def test_cli_check_exits_2_and_prints_problems(broken: Path):
    result = cli("inventory", "check", "-i", str(broken))
    assert result.returncode == 2
    for text in ("k8s-prod-eu-02", "wk_agent_url", "host_vars/k8s-prod-eu-02.yml",
                 "wk_threshold_failed_ratio"):
        assert text in result.stderr
    data = json.loads(cli("inventory", "check", "-i", str(broken), "--output", "json").stdout)
    assert data["ok"] is False and len(data["problems"]) >= 4


def test_run_refuses_a_broken_inventory_before_anything_runs(broken: Path, tmp_path: Path):
    result = cli("run", "ping", "-i", str(broken), "--run-dir", str(tmp_path / "run"),
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2
    journal = json.loads((tmp_path / "run" / "journal.json").read_text())
    assert journal["status"] == "failed" and "wk_agent_url" in journal["message"]
    assert not (tmp_path / "run" / "ansible").exists()


def test_show_prints_references_never_values(monkeypatch: pytest.MonkeyPatch):
    result = cli("inventory", "show", "-i", str(EXAMPLE), "--output", "json",
                 env={"WK_PROD_S3_SECRET_KEY": "s3-secret-value-123"})
    assert result.returncode == 0
    view = json.loads(result.stdout)["clusters"]["obs-eu-west-1"]
    assert view["s3_secret_key"] == "{env: WK_PROD_S3_SECRET_KEY}"
    assert "s3-secret-value-123" not in result.stdout


def test_unknown_limit_suggests_a_name():
    with pytest.raises(Exception, match="did you mean 'k8s-prod-eu-01'"):
        load_inventory(EXAMPLE).select("k8s-prod-eu-1")


def test_a_password_inside_a_url_is_refused_and_not_echoed(tmp_path: Path):
    target = tmp_path / "inv"
    shutil.copytree(EXAMPLE, target)
    host = target / "host_vars" / "obs-eu-west-1.yml"
    host.write_text(host.read_text().replace(
        "wk_store_url: http://thanos-store", "wk_store_url: http://admin:s3cret-in-url@thanos-store"))
    inventory, problems = check_inventory(target)
    assert inventory is None
    problem = next(p for p in problems if p.field == "wk_store_url")
    assert "without credentials" in problem.expected
    assert "s3cret-in-url" not in problem.found
