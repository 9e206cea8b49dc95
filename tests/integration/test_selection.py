"""Which clusters a run works on, like a play's `hosts:`: a runbook declares the clusters it
applies to (Runbook.applies_to); without --limit it runs on those and names the others it left
out, with why, in the progress, the summary, the journal and every report. Through the real CLI
and real ansible-playbook runs, on the example inventory (one observability cluster, four
workload clusters) and the fixture inventory (two workload clusters)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab.controlplane import ControlPlane

from tests.conftest import NAMESPACE, REPO, cli
from tests.integration.test_engine import FIXTURES

EXAMPLE = REPO / "inventory" / "example"
FIXTURE_INVENTORY = REPO / "tests" / "fixtures" / "inventory"
OBSERVABILITY = "obs-eu-west-1"
WORKLOAD = ["k8s-prod-eu-01", "k8s-prod-eu-02", "k8s-prod-us-01", "k8s-stg-eu-01"]
NO_RECEIVERS = "workload cluster, no receivers"


def _run(tmp_path: Path, state_env: dict[str, str], runbook: str, inventory: Path, *extra: str,
         run: str = "run") -> tuple[Any, dict[str, Any]]:
    # The example's OpenSearch password is a reference to this variable.
    env = {**FIXTURES, **state_env, "WK_PROD_OPENSEARCH_PASSWORD": "not-a-real-password"}
    result = cli("run", runbook, "-i", str(inventory), "--run-dir", str(tmp_path / run), *extra,
                 env=env)
    path = tmp_path / run / "journal.json"
    return result, (json.loads(path.read_text()) if path.exists() else {})


def test_without_limit_it_runs_where_it_applies_and_names_what_it_left_out(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _run(tmp_path, state_env, "fixture-receivers", EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["clusters"] == {OBSERVABILITY: "ok"}
    assert journal["left_out"] == {name: NO_RECEIVERS for name in WORKLOAD}
    assert {s["cluster"] for s in journal["steps"] if s["phase"] == "playbook"} == \
        {OBSERVABILITY}
    # Progress (stderr) names each as it is left out; the summary (stdout) groups them.
    assert f"left out k8s-prod-eu-01: {NO_RECEIVERS}" in result.stderr
    summary = next(line for line in result.stdout.splitlines() if "left out" in line)
    assert summary.strip().startswith(f"left out ({NO_RECEIVERS}):"), result.stdout
    assert all(name in summary for name in WORKLOAD), summary

    run_dir = tmp_path / "run"
    assert f"| k8s-prod-us-01 | left out: {NO_RECEIVERS} |" in (run_dir / "report.md").read_text()
    assert f"left out: {NO_RECEIVERS}" in (run_dir / "report.html").read_text()
    assert json.loads((run_dir / "report.json").read_text())["left_out"] == journal["left_out"]
    skipped = [c for c in ET.parse(run_dir / "junit.xml").getroot().iter("testcase")
               if c.get("name") == "left out"]
    assert len(skipped) == len(WORKLOAD)

    result, _ = _run(tmp_path, state_env, "fixture-receivers", EXAMPLE, "--output", "json",
                     run="json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["left_out"] == journal["left_out"]


def test_a_group_in_limit_is_narrowed_as_the_whole_inventory_is(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _run(tmp_path, state_env, "fixture-receivers", EXAMPLE, "--limit",
                           "eu_west")
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["clusters"] == {OBSERVABILITY: "ok"}
    assert journal["left_out"] == {"k8s-prod-eu-01": NO_RECEIVERS,
                                   "k8s-prod-eu-02": NO_RECEIVERS}


def test_a_cluster_named_in_limit_that_does_not_fit_is_a_usage_error(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _run(tmp_path, state_env, "fixture-receivers", EXAMPLE, "--limit",
                           f"{OBSERVABILITY},k8s-prod-eu-01")
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("k8s-prod-eu-01: wk_role: expected observability (fixture-receivers works on"
            " receivers), found workload") in result.stderr
    assert journal["status"] == "failed" and journal["exit_code"] == 2
    assert not (tmp_path / "run" / "ansible").exists()


def test_no_cluster_it_applies_to_is_a_usage_error_naming_why_each_was_left_out(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _run(tmp_path, state_env, "fixture-receivers", FIXTURE_INVENTORY)
    assert result.returncode == 2, result.stdout + result.stderr
    assert journal["message"] == (
        "fixture-receivers applies to none of the selected clusters; it works on clusters with"
        f" receivers (wk_role observability): cluster-a: {NO_RECEIVERS}; cluster-b:"
        f" {NO_RECEIVERS}")
    assert journal["left_out"] == {"cluster-a": NO_RECEIVERS, "cluster-b": NO_RECEIVERS}
    assert not (tmp_path / "run" / "ansible").exists()


def test_a_runbook_scoped_by_a_variable_leaves_out_the_clusters_without_it(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _run(tmp_path, state_env, "fixture-opensearch", EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["clusters"] == {OBSERVABILITY: "ok"}
    assert journal["left_out"] == {
        name: "no OpenSearch: wk_opensearch_url not set" for name in WORKLOAD}


def test_describe_says_what_a_runbook_applies_to() -> None:
    result = cli("describe", "scale-receivers", check_rc=0)
    assert "applies to: clusters with receivers (wk_role observability)" in result.stdout


# --------------------------------------------------------------------------- built-in runbooks


def test_backup_opensearch_over_the_whole_inventory_works_on_the_opensearch_cluster(
        tmp_path: Path, state_env: dict[str, str]) -> None:
    """The example's OpenSearch does not resolve: the run is refused by backup-opensearch's own
    validation of the one cluster it applies to, not by the workload clusters."""
    result, journal = _run(tmp_path, state_env, "backup-opensearch", EXAMPLE)
    assert result.returncode == 3, result.stdout + result.stderr
    assert journal["clusters"] == {OBSERVABILITY: "not-run"}
    assert set(journal["left_out"]) == set(WORKLOAD)
    assert journal["message"].startswith(f"{OBSERVABILITY}: cannot use OpenSearch at"
                                         " wk_opensearch_url"), journal["message"]

    result, journal = _run(tmp_path, state_env, "backup-opensearch", EXAMPLE, "--limit",
                           "k8s-prod-eu-01", "--output", "json", run="limited")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "k8s-prod-eu-01: wk_opensearch_url: expected a value" in \
        json.loads(result.stdout)["message"]


@pytest.fixture
def receivers(apiserver: ControlPlane) -> Iterator[None]:
    """A thanos-receive StatefulSet (no pods: no controller runs) and its hashring ConfigMap
    in cluster-a's namespace of the real kube-apiserver."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig),
                                        context="cluster-a")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    labels = {"app.kubernetes.io/name": "thanos-receive"}
    apps.create_namespaced_stateful_set(NAMESPACE, client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="thanos-receive", labels=labels),
        spec=client.V1StatefulSetSpec(
            replicas=2, service_name="thanos-receive",
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="thanos", image="quay.io/thanos/thanos:v0.39.2")])))))
    core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="thanos-receive-hashring"),
        data={"hashrings.json": json.dumps([{"hashring": "default", "endpoints": []}])}))
    try:
        yield
    finally:
        apps.delete_namespaced_stateful_set("thanos-receive", NAMESPACE)
        core.delete_namespaced_config_map("thanos-receive-hashring", NAMESPACE)


def test_scale_receivers_check_over_the_whole_inventory_works_on_the_observability_cluster(
        apiserver: ControlPlane, receivers: None, tmp_path: Path,
        state_env: dict[str, str]) -> None:
    """scale-receivers --check without --limit: the workload cluster is left out, the
    observability cluster is validated (its StatefulSet read from the real API server) and
    its pre-gate runs; the receivers have no pods, so the pre-gate fails: exit 3, nothing
    changed."""
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local"},
        "hosts": {"obs": {}, "k8s-cluster-01": {}}}}))
    (inventory / "host_vars" / "obs.yml").write_text(yaml.safe_dump({
        "wk_role": "observability", "wk_kube_context": "cluster-a",
        "wk_kubeconfig": str(apiserver.kubeconfig), "wk_namespace": NAMESPACE,
        "wk_receive_http_urls": ["http://127.0.0.1:9"], "wk_query_url": "http://127.0.0.1:9"}))
    (inventory / "host_vars" / "k8s-cluster-01.yml").write_text(yaml.safe_dump({
        "wk_agent_url": "http://127.0.0.1:9",
        "wk_receive_remote_write_url": "http://127.0.0.1:9/api/v1/receive"}))
    result, journal = _run(tmp_path, state_env, "scale-receivers", inventory, "--check",
                           "-e", "replicas=3", "-e", "settle_timeout=0")
    assert result.returncode == 3, result.stdout + result.stderr
    assert journal["left_out"] == {"k8s-cluster-01": NO_RECEIVERS}
    assert journal["clusters"] == {"obs": "failed"}
    steps = [(s["phase"], s["cluster"], s["status"]) for s in journal["steps"]]
    assert steps == [("validate", "-", "ok"), ("pre-gate", "obs", "failed")], steps
    assert "0/2 receivers Ready" in journal["steps"][1]["message"]
    assert "a pre-gate failed; nothing was changed" in journal["message"]
