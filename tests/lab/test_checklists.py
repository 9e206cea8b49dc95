"""The operations checklists against the real lab: the daily, weekly and monthly checklists on
every cluster at once, and faults injected into the real programs that the checklist must name:
an ArgoCD Application OutOfSync, then Degraded (real ArgoCD status: an Application of the
test's own whose Deployment cannot pull its image), a stopped canary scrape target, a data
volume filled in a small tmpfs, log indices older than the retention, versions behind the
latest known, and no verified backup. Undeclared Grafana is `skipped`, never a pass. Also
`watchkeeper query` against the lab's Thanos Query."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, platform, topology

from tests.conftest import cli
from tests.lab.test_kubernetes import kubectl
from tests.lab.test_lab import poll

pytestmark = pytest.mark.lab
APP = f"{topology.CLUSTERS[0]}-prometheus-agent"


def run(lab: Lab, tmp_path: Path, checklist: str, *args: str, inventory: Path | None = None,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                     dict[str, Any]]:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    result = cli("run", f"checklist-{checklist}", "-i", str(inventory or lab.inventory_dir),
                 "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env(),
                      **(env or {})})
    report = json.loads((run_dir / "report.json").read_text())
    return result, report


def rows(report: dict[str, Any], cluster: str, prefix: str) -> list[dict[str, Any]]:
    return [r for r in report["checks"] if r["cluster"] == cluster
            and r["check"].startswith(prefix)]


def inventory_with(lab: Lab, tmp_path: Path, host: str, **variables: Any) -> Path:
    """A copy of the lab's inventory with extra variables for one host."""
    target = tmp_path / "inventory"
    if not target.exists():
        shutil.copytree(lab.inventory_dir, target)
    path = target / "host_vars" / f"{host}.yml"
    data = yaml.safe_load(path.read_text()) or {}
    data.update(variables)
    path.write_text(yaml.safe_dump(data))
    return target


def custom_objects(lab: Lab) -> Any:
    from kubernetes import client, config

    return client.CustomObjectsApi(config.new_client_from_config(
        config_file=str(lab.kubeconfig), context=platform.OBSERVABILITY))


BROKEN_APP = f"{topology.CLUSTERS[0]}-checklist-broken"
BROKEN_PATH = "tests/checklist-broken"


def broken_deployment(lab: Lab) -> str:
    """A Deployment whose image tag no registry has: its pod never pulls, so the Deployment
    exceeds its progress deadline (ArgoCD: Degraded)."""
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "checklist-broken", "namespace": topology.CLUSTERS[0]},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 10,
                 "selector": {"matchLabels": {"app": "checklist-broken"}},
                 "template": {
                     "metadata": {"labels": {"app": "checklist-broken"},
                                  "annotations": {"lab.watchkeeper.io/ip": lab.addresses.ip(94)}},
                     "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                         "name": "main", "image": "quay.io/prometheus/prometheus:v0.0.0-missing",
                         "args": ["--version"]}]}}}})


@pytest.fixture
def broken_app(lab: Lab) -> Iterator[str]:
    """An Application of the test's own in the first cluster's namespace, without automated
    sync, over that Deployment (committed to the lab's git); removed afterwards with what it
    created."""
    from tests.lab.test_argocd import commit

    commit(lab, {f"{BROKEN_PATH}/deployment.json": broken_deployment(lab)}, "checklist: broken")
    api = custom_objects(lab)
    api.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd", "applications", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": BROKEN_APP, "namespace": "argocd"},
        "spec": {"project": "default",
                 "source": {"repoURL": f"file://{lab.dir / 'git' / 'platform.git'}",
                            "targetRevision": "main", "path": BROKEN_PATH},
                 "destination": {"server": "https://kubernetes.default.svc",
                                 "namespace": topology.CLUSTERS[0]}}})
    try:
        yield BROKEN_APP
    finally:
        api.delete_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd",
                                            "applications", BROKEN_APP)
        kubectl(lab, "-n", topology.CLUSTERS[0], "delete", "deployment", "checklist-broken",
                "--ignore-not-found", "--wait=false")
        commit(lab, {f"{BROKEN_PATH}/deployment.json": None}, "checklist: broken removed")


def app_state(lab: Lab, name: str) -> dict[str, Any]:
    app = custom_objects(lab).get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", name)
    status = app.get("status") or {}
    return {"sync": (status.get("sync") or {}).get("status"),
            "health": (status.get("health") or {}).get("status"),
            "operation": (status.get("operationState") or {}).get("phase")}


def test_daily_on_every_cluster_names_each_item_and_never_passes_what_it_cannot_see(
    lab: Lab, tmp_path: Path
) -> None:
    result, report = run(lab, tmp_path, "daily")
    assert result.returncode == 0, (result.stdout, report["checks"])
    assert set(report["summary"]) == {*topology.CLUSTERS, platform.OBSERVABILITY}
    for cluster in report["summary"]:
        grafana = rows(report, cluster, "grafana")
        assert [g["status"] for g in grafana] == ["skipped"]
        assert "wk_grafana_url" in grafana[0]["evidence"]
        apps = rows(report, cluster, "argocd app ")
        # Judged against ArgoCD's real status: every platform Application Synced and Healthy.
        assert apps and all(a["status"] == "ok" and "sync Synced, health Healthy" in
                            a["evidence"] for a in apps), apps
        assert all(r["status"] == "ok" for r in rows(report, cluster, "disk ")), report
    for cluster in topology.CLUSTERS:
        assert [r["status"] for r in rows(report, cluster, "remote write ")] == ["ok"]
        assert rows(report, cluster, "agent scrape targets")[0]["status"] == "ok"
    ingesting = rows(report, platform.OBSERVABILITY, "receiver ingesting")
    assert len(ingesting) == topology.RECEIVERS and {r["status"] for r in ingesting} == {"ok"}
    statuses = {r["status"] for r in report["checks"]}
    assert "fail" not in statuses  # skipped Grafana is the worst unless something warns
    assert report["worst_check"] == ("warn" if "warn" in statuses else "skipped")
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    markdown = (run_dir / "report.md").read_text()
    assert "## Checks per cluster" in markdown
    assert "| k8s-cluster-01 | grafana | skipped |" in markdown
    junit = (run_dir / "junit.xml").read_text()
    assert "argocd app observability-thanos-receive" in junit


def test_an_application_out_of_sync_then_degraded_fails_naming_it(
    lab: Lab, tmp_path: Path, broken_app: str
) -> None:
    cluster = topology.CLUSTERS[0]
    # Not synced yet (no automated sync): ArgoCD reports it OutOfSync, its Deployment Missing.
    poll("OutOfSync", lambda: app_state(lab, broken_app)["sync"] == "OutOfSync", 90, 1)
    result, report = run(lab, tmp_path, "daily", "--limit", cluster)
    assert result.returncode == 1
    check = rows(report, cluster, f"argocd app {broken_app}")[0]
    assert check["status"] == "fail" and "sync OutOfSync" in check["evidence"], check
    assert "argocd app diff" in check["hint"]
    assert broken_app in json.loads(result.stdout)["message"]  # the verdict names it
    platform_app = rows(report, cluster, f"argocd app {APP}")[0]
    assert platform_app["status"] == "ok", platform_app

    # Synced by hand (the `operation` that `argocd app sync` sends): the Deployment's pod
    # cannot pull its image, the Deployment passes its progress deadline: Degraded.
    custom_objects(lab).patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", broken_app,
        {"operation": {"initiatedBy": {"username": "watchkeeper-test"}, "sync": {}}})
    poll("Synced and Degraded", lambda: app_state(lab, broken_app) | {"operation": None} ==
         {"sync": "Synced", "health": "Degraded", "operation": None}, 120, 1)
    result, report = run(lab, tmp_path, "daily", "--limit", cluster)
    assert result.returncode == 1
    check = rows(report, cluster, f"argocd app {broken_app}")[0]
    assert check["status"] == "fail" and "health Degraded" in check["evidence"], check
    assert "argocd app get" in check["hint"]


def test_a_stopped_canary_scrape_target_fails_the_agent_check(lab: Lab, tmp_path: Path) -> None:
    name = f"canary-{topology.CLUSTERS[0]}"
    victim = {c.name: c for c in lab.status().components}[name]
    assert victim.pid
    os.kill(victim.pid, signal.SIGTERM)
    try:
        poll("the agent to see its canary down", lambda: canary_health(lab) == "down", 60, 1)
        result, report = run(lab, tmp_path, "daily", "--limit", topology.CLUSTERS[0])
        assert result.returncode == 1
        check = rows(report, topology.CLUSTERS[0], "agent scrape targets")[0]
        assert check["status"] == "fail"
        assert "canary" in check["evidence"] and f"{lab.addresses.canary(0)}:8080" in \
            check["evidence"]
    finally:
        lab.up()
        poll("the agent to see its canary up again", lambda: canary_health(lab) == "up", 60, 1)


def canary_health(lab: Lab) -> str:
    """The first agent's view of its canary target (up / down / unknown). A Prometheus that
    has just (re)started answers before its scrape manager has the target: "unknown" then."""
    import urllib.request

    agent = f"http://{lab.addresses.agent(0)}:9090/api/v1/targets?state=active"
    with urllib.request.urlopen(agent, timeout=5) as response:
        targets = json.loads(response.read())["data"]["activeTargets"]
    return str(next((t["health"] for t in targets if t["labels"]["job"] == "canary"),
                    "unknown"))


def test_a_filled_data_volume_fails_naming_the_path(
    lab: Lab, tmp_path: Path, small_volume: Path
) -> None:
    cluster = topology.CLUSTERS[0]
    inventory = inventory_with(lab, tmp_path, cluster,
                               wk_data_volume_paths=[str(small_volume)])
    result, report = run(lab, tmp_path, "daily", "--limit", cluster, inventory=inventory)
    assert result.returncode == 0
    assert rows(report, cluster, f"disk {small_volume}")[0]["status"] == "ok"

    (small_volume / "wal-segment").write_bytes(os.urandom(int(3.8 * 2**20)))
    result, report = run(lab, tmp_path, "daily", "--limit", cluster, inventory=inventory)
    assert result.returncode == 1
    check = rows(report, cluster, f"disk {small_volume}")[0]
    assert check["status"] == "fail" and ">= 90%" in check["evidence"], check
    assert "wk_data_volume_paths" in check["evidence"] and check["hint"]
    # The other volumes (the agent's PersistentVolume) are still measured and fine.
    assert any(r["status"] == "ok" for r in rows(report, cluster, "disk "))


def test_weekly_reads_buckets_tsdb_alerts_wal_and_names_overdue_log_indices(
    lab: Lab, tmp_path: Path
) -> None:
    obs = platform.OBSERVABILITY
    result, report = run(lab, tmp_path, "weekly", "--limit", obs)
    assert result.returncode == 0, report["checks"]
    buckets = rows(report, obs, "s3 bucket ")
    assert {b["check"] for b in buckets} == {f"s3 bucket {topology.BLOCKS_BUCKET}",
                                             f"s3 bucket {topology.BACKUPS_BUCKET}"}
    assert all("no earlier record" in b["evidence"] for b in buckets)
    assert rows(report, obs, "prometheus tsdb")[0]["status"] == "ok"
    alerts = rows(report, obs, "alertmanager alerts")[0]
    assert "WatchkeeperLabWatchdog" in alerts["evidence"]
    assert rows(report, obs, "wal ") and all(r["status"] == "ok" for r in rows(report, obs, "wal "))
    assert rows(report, obs, "log index cleanup")[0]["status"] == "ok"

    # A second run compares with the first's record; a 2-day retention leaves the oldest of
    # the lab's 5 daily indices overdue.
    inventory = inventory_with(lab, tmp_path, obs, wk_log_retention_days=2)
    result, report = run(lab, tmp_path, "weekly", "--limit", obs, inventory=inventory)
    assert result.returncode == 0
    assert all("since" in b["evidence"] for b in rows(report, obs, "s3 bucket "))
    cleanup = rows(report, obs, "log index cleanup")[0]
    assert cleanup["status"] == "warn" and "older than the retention still present: logs-" in \
        cleanup["evidence"], cleanup
    assert "cleanup-log-indices" in cleanup["hint"]


def test_monthly_compares_versions_and_fails_without_a_verified_backup(
    lab: Lab, tmp_path: Path
) -> None:
    obs = platform.OBSERVABILITY
    inventory = inventory_with(lab, tmp_path, obs,
                               wk_versions_latest={"thanos": "0.40.2", "opensearch": "2.19.3"})
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    env = {"WATCHKEEPER_TEXTFILE_DIR": str(textfiles)}
    result, report = run(lab, tmp_path, "monthly", "--limit", obs, inventory=inventory, env=env)
    assert result.returncode == 1
    thanos = rows(report, obs, "version thanos")[0]
    assert thanos["status"] == "warn" and "patch release available" in thanos["evidence"]
    assert rows(report, obs, "version opensearch")[0]["status"] == "ok"
    patches = rows(report, obs, "security patches")[0]
    assert patches["status"] == "warn" and "thanos 0.40.1 -> 0.40.2" in patches["evidence"]
    backup = rows(report, obs, "backup verification age")[0]
    assert backup["status"] == "fail" and "no watchkeeper_backup_last_verified" in \
        backup["evidence"]

    (textfiles / "watchkeeper_backup.prom").write_text(
        "watchkeeper_backup_last_verified_timestamp_seconds{kind=\"bucket\"}"
        f" {time.time() - 3600:.0f}\n")
    result, report = run(lab, tmp_path, "monthly", "--limit", obs, inventory=inventory, env=env)
    backup = rows(report, obs, "backup verification age")[0]
    assert backup["status"] == "ok" and "kind=bucket 0.0 day(s) ago" in backup["evidence"]
    # Workload clusters: resource usage from Query for their own cluster label.
    result, report = run(lab, tmp_path, "monthly", "--limit", topology.CLUSTERS[0])
    usage = rows(report, topology.CLUSTERS[0], "resource usage")[0]
    assert usage["status"] == "ok" and "prometheus-agent" in usage["evidence"]


def test_query_prints_rows_from_the_clusters_thanos_query(lab: Lab) -> None:
    inventory = str(lab.inventory_dir)
    result = cli("query", "sum by (cluster) (watchkeeper_lab_canary_total)", "-i", inventory,
                 "--cluster", platform.OBSERVABILITY, "--output", "json", check_rc=0)
    answer = json.loads(result.stdout)
    assert answer["result_type"] == "vector"
    assert {r["labels"]["cluster"] for r in answer["rows"]} == set(topology.CLUSTERS)
    text = cli("query", "sum by (cluster) (watchkeeper_lab_canary_total)", "-i", inventory,
               check_rc=0)
    assert all(cluster in text.stdout for cluster in topology.CLUSTERS)
    bad = cli("query", "sum(", "-i", inventory)
    assert bad.returncode == 1 and "parse error" in bad.stderr
