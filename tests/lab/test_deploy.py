"""deploy/: the backup CronJobs, their RBAC and image, and the alert rules on the run metrics.

The manifests are rendered with the lab's kubectl (its built-in kustomize) and sent to the lab's
real kube-apiserver with server-side dry run and strict field validation; the RBAC is applied to
a namespace of this module's own and proven sufficient (and nothing more) by a real backup-bucket
run that takes its Lease with the ServiceAccount's own token. The alert rules go through Debian's
promtool (`check rules`, `test rules`), and mutated copies prove the unit tests bite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, build

from runbooks.clients import s3_client
from runbooks.inventory import load_inventory
from runbooks.registry import all_runbooks
from tests.conftest import REPO, cli

DEPLOY = REPO / "deploy"
EXAMPLE = DEPLOY / "overlays" / "example"
ALERTS = DEPLOY / "alerts"
RULES = ALERTS / "watchkeeper-backups.rules.yml"
RULE_TESTS = ALERTS / "watchkeeper-backups.test.yml"


# --------------------------------------------------------------------------- helpers


def kubectl_binary() -> Path:
    return build.ensure(build.load_specs()["kubectl"], print)


def kubectl(lab: Lab, *args: str, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(kubectl_binary()), f"--kubeconfig={lab.kubeconfig}",
                           "--context=observability", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` with the lab's kubectl: the objects an operator would apply."""
    proc = subprocess.run([str(kubectl_binary()), "kustomize", str(directory)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def dry_run(lab: Lab, objects: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return kubectl(lab, "apply", "--server-side", "--dry-run=server", "--validate=strict",
                   "--field-manager=watchkeeper-test", "-f", "-", check=False,
                   stdin=yaml.safe_dump_all(objects))


def container(cronjob: dict[str, Any]) -> dict[str, Any]:
    containers = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def dockerfile_user() -> str:
    users = re.findall(r"^USER\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    assert len(users) == 1
    return users[0]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render(EXAMPLE)


# --------------------------------------------------------------------------- manifests


@pytest.mark.lab
def test_rendered_manifests_pass_the_api_servers_server_side_dry_run(
    lab: Lab, rendered: list[dict[str, Any]]
) -> None:
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "ConfigMap",
                            "ConfigMap", "CronJob", "CronJob", "CronJob", "CronJob"])
    proc = dry_run(lab, rendered)
    assert proc.returncode == 0, proc.stderr
    for obj in rendered:
        assert f"{obj['metadata']['name']} serverside-applied (server dry run)" in proc.stdout
    # A dry run creates nothing.
    gone = kubectl(lab, "-n", "monitoring", "get", "cronjob", "watchkeeper-backup-bucket",
                   check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


@pytest.mark.lab
def test_the_api_server_refuses_an_invalid_field(
    lab: Lab, rendered: list[dict[str, Any]]
) -> None:
    """The dry run is a real check: the same objects with one unknown field, or a schedule
    that is not cron, are refused."""
    broken = json.loads(json.dumps(rendered))
    job = by_kind(broken, "CronJob")[0]
    job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] \
        = "Always"
    proc = dry_run(lab, broken)
    assert proc.returncode != 0
    assert ('.spec.jobTemplate.spec.template.spec.containers[name="watchkeeper"]'
            '.imagePullPolicyy: field not declared in schema') in proc.stderr, proc.stderr

    broken = json.loads(json.dumps(rendered))
    by_kind(broken, "CronJob")[0]["spec"]["schedule"] = "every six hours"
    proc = dry_run(lab, broken)
    assert proc.returncode != 0 and "spec.schedule" in proc.stderr, proc.stderr


def test_cronjobs_set_what_the_inventory_refers_to(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Every {env: NAME} of the inventory in the ConfigMap comes from the Secret; the inventory
    loads; its kubeconfig, context and namespace are the mounted ones; the image's user is the
    pods' runAsUser; each CronJob runs a registered mutating backup runbook."""
    maps = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in by_kind(rendered, "ConfigMap")}
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(maps["watchkeeper-backup-inventory"]["data"]["hosts.yml"])
    inventory = load_inventory(hosts)
    references = {ref.name for c in inventory.clusters for _, ref in c.secrets()}
    assert references == {"WK_S3_ACCESS_KEY", "WK_S3_SECRET_KEY", "WK_OPENSEARCH_PASSWORD"}
    kubeconfig = yaml.safe_load(maps["watchkeeper-backup-kubeconfig"]["data"]["kubeconfig"])
    role = by_kind(rendered, "Role")[0]
    runbooks = all_runbooks()
    jobs = by_kind(rendered, "CronJob")
    assert {j["metadata"]["name"] for j in jobs} == {
        "watchkeeper-backup-bucket", "watchkeeper-backup-opensearch", "watchkeeper-backup-tsdb",
        "watchkeeper-verify-backups"}
    for job in jobs:
        pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        main = container(job)
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        assert pod["serviceAccountName"] == by_kind(rendered, "ServiceAccount")[0]["metadata"][
            "name"]
        from_secret = {e["name"] for e in main["env"]
                       if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                       == "watchkeeper-backup-credentials"}
        assert references <= from_secret
        args = main["args"]
        assert args[0] == "run" and args[1] in runbooks and runbooks[args[1]].mutating
        assert args[1].startswith("backup-") or args[1] == "verify-backups"
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        inventory_path = args[args.index("-i") + 1]
        assert inventory_path == f"{mounts['inventory']}/hosts.yml"
        assert volumes["inventory"]["configMap"]["name"] == \
            maps["watchkeeper-backup-inventory"]["metadata"]["name"]
        for cluster in inventory.clusters:
            assert cluster.kubeconfig == f"{mounts['kubeconfig']}/kubeconfig"
            assert cluster.kube_context in {c["name"] for c in kubeconfig["contexts"]}
            assert cluster.namespace == role["metadata"]["namespace"]
        assert volumes["kubeconfig"]["configMap"]["name"] == \
            maps["watchkeeper-backup-kubeconfig"]["metadata"]["name"]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in volumes.values()
                  if "persistentVolumeClaim" in v]
        if args[1] == "backup-tsdb":
            # It works in the Prometheus server's volume (the snapshot the server writes), on
            # the server's node and as the server's user, so that it may delete the snapshot.
            assert claims == ["data-prometheus-0"]
            assert mounts["prometheus-data"] == "/prometheus"
            assert all(c.prometheus_tsdb_path == "/prometheus" and c.prometheus_url
                       for c in inventory.clusters)
            affinity = pod["affinity"]["podAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"][0]
            assert affinity["labelSelector"]["matchLabels"] == {
                "app.kubernetes.io/name": "prometheus"}
            assert pod["securityContext"]["runAsUser"] == 65534
        else:
            assert claims == []
            assert str(pod["securityContext"]["runAsUser"]) == dockerfile_user().split(":")[0]
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        # A read-only root: state and HOME on emptyDirs.
        env = {e["name"]: e.get("value") for e in main["env"]}
        assert env["WATCHKEEPER_STATE_DIR"] in mounts.values()
        assert env["HOME"] in mounts.values()


# --------------------------------------------------------------------------- RBAC, for real


@pytest.fixture
def namespace(lab: Lab) -> Iterator[str]:
    name = "wktest-deploy-" + os.urandom(3).hex()
    kubectl(lab, "create", "namespace", name)
    yield name
    kubectl(lab, "delete", "namespace", name, "--wait=false")


@pytest.fixture
def backup_bucket(lab: Lab) -> Iterator[str]:
    s3 = s3_client(load_inventory(lab.inventory_dir).cluster("observability"))
    name = "wktest-deploy-" + os.urandom(3).hex()
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if doomed:
            s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
    s3.delete_bucket(Bucket=name)


def can_i(lab: Lab, namespace: str, *what: str) -> bool:
    proc = kubectl(lab, "auth", "can-i", *what, "-n", namespace,
                   f"--as=system:serviceaccount:{namespace}:watchkeeper-backup", check=False)
    return proc.stdout.strip() == "yes"


@pytest.mark.lab
def test_rbac_allows_the_run_lock_and_nothing_more(
    lab: Lab, namespace: str, backup_bucket: str, tmp_path: Path
) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    shutil.copy(EXAMPLE / "hosts.yml", overlay / "hosts.yml")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(DEPLOY / "base", overlay)],
        "configMapGenerator": [{"name": "watchkeeper-backup-inventory",
                                "files": ["hosts.yml"]}]}))
    objects = render(overlay)
    kubectl(lab, "apply", "--server-side", "--field-manager=watchkeeper-test", "-f", "-",
            stdin=yaml.safe_dump_all(objects))

    assert can_i(lab, namespace, "create", "leases.coordination.k8s.io")
    for verb in ("get", "update", "delete"):
        assert can_i(lab, namespace, verb, "leases.coordination.k8s.io/watchkeeper-lock")
        assert not can_i(lab, namespace, verb, "leases.coordination.k8s.io/someone-elses")
    for what in (("list", "leases.coordination.k8s.io"), ("get", "secrets"),
                 ("get", "configmaps"), ("list", "pods"), ("create", "pods"),
                 ("patch", "statefulsets.apps")):
        assert not can_i(lab, namespace, *what), what

    # A real run with the ServiceAccount's own token: backup-bucket takes and releases the
    # Lease in the namespace (the copy goes to a bucket of this test's own).
    token = kubectl(lab, "-n", namespace, "create", "token", "watchkeeper-backup").stdout.strip()
    lab_config = yaml.safe_load(lab.kubeconfig.read_text())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": lab_config["clusters"],
        "users": [{"name": "watchkeeper-backup", "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": lab_config["clusters"][0]["name"], "user": "watchkeeper-backup"}}],
        "current-context": "in-cluster"}))
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local"},
        "hosts": {"observability": {}}}}))
    lab_obs = yaml.safe_load((lab.inventory_dir / "group_vars" / "all.yml").read_text())
    (inventory / "host_vars" / "observability.yml").write_text(yaml.safe_dump({
        "wk_role": "observability",
        "wk_kubeconfig": str(kubeconfig), "wk_kube_context": "in-cluster",
        "wk_namespace": namespace,
        "wk_receive_http_urls": lab_obs["wk_receive_http_urls"],
        **{k: lab_obs[k] for k in ("wk_s3_endpoint", "wk_s3_region", "wk_s3_bucket_blocks",
                                   "wk_s3_access_key", "wk_s3_secret_key")},
        "wk_s3_bucket_backups": backup_bucket}))

    def backup(run: str) -> subprocess.CompletedProcess[str]:
        return cli("run", "backup-bucket", "-i", str(inventory), "--run-dir",
                   str(tmp_path / run), "--output", "json", timeout=300,
                   env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")})

    result = backup("run-ok")
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((tmp_path / "run-ok" / "journal.json").read_text())
    assert journal["clusters"] == {"observability": "ok"}
    # Released at the end.
    assert kubectl(lab, "-n", namespace, "get", "lease", "watchkeeper-lock",
                   check=False).returncode != 0

    # Without the RoleBinding the same run cannot take its lock: the Role is what made it work.
    kubectl(lab, "-n", namespace, "delete", "rolebinding", "watchkeeper-backup")
    result = backup("run-forbidden")
    assert result.returncode != 0
    assert "forbidden" in (result.stdout + result.stderr).lower()


# --------------------------------------------------------------------------- image


def test_dockerfile_installs_a_wheel_that_carries_the_backup_runbooks(tmp_path: Path) -> None:
    """Offline: the wheel the Dockerfile copies is the one `pip wheel` builds, and installed on
    its own (outside the checkout) it runs the backup runbooks' playbooks and modules."""
    text = (DEPLOY / "Dockerfile").read_text()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", text, re.MULTILINE)
    assert "COPY dist/watchkeeper-${VERSION}-py3-none-any.whl" in text
    assert re.search(r'^ENTRYPOINT \["watchkeeper"\]$', text, re.MULTILINE)
    assert dockerfile_user() != "root" and dockerfile_user().split(":")[0].isdigit()

    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(dist), str(REPO)], check=True, capture_output=True,
                   timeout=300)
    wheel = dist / f"watchkeeper-{version}-py3-none-any.whl"
    assert wheel.is_file(), list(dist.iterdir())
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "apt-get install -y --no-install-recommends prometheus" in text  # verify-backups
    assert "COPY --from=thanos /out/thanos /usr/local/bin/thanos" in text
    for needed in ("playbooks/backup-bucket.yml", "playbooks/restore-bucket.yml",
                   "playbooks/backup-opensearch.yml", "playbooks/backup-tsdb.yml",
                   "playbooks/verify-backups.yml",
                   "plugins/modules/thanos_bucket_backup.py",
                   "plugins/module_utils/thanos_blocks.py", "plugins/module_utils/s3.py"):
        assert f"runbooks/_collection/{needed}" in names, needed

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True, capture_output=True,
                   timeout=300)
    probe = ("import runbooks, sys; from runbooks.collection import collection_root;"
             " from runbooks.cli import main; print(runbooks.__file__);"
             " print(collection_root()); sys.exit(main(['describe', 'backup-bucket']))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    module_file, root = proc.stdout.splitlines()[:2]
    assert module_file.startswith(str(site)) and root.startswith(str(site))
    assert (Path(root) / "playbooks" / "backup-bucket.yml").is_file()
    assert "playbook:  playbooks/backup-bucket.yml" in proc.stdout


# --------------------------------------------------------------------------- alert rules


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian ships promtool)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.prometheus
def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout

    # Every alert is shown both firing and not firing.
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == {"WatchkeeperBackupTooOld", "WatchkeeperBackupNeverSucceeded",
                     "WatchkeeperBackupNotVerified", "WatchkeeperBackupNeverVerified"}
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for c in t["alert_rule_test"]]
    for name in names:
        outcomes = {bool(c["exp_alerts"]) for c in cases if c["alertname"] == name}
        assert outcomes == {True, False}, name
    # The metric the verification alerts read is the one verify-backups records.
    assert "watchkeeper_backup_last_verified_timestamp_seconds" in RULES.read_text()


@pytest.mark.prometheus
@pytest.mark.parametrize("original, mutated", [
    ("> 26 * 3600", "> 30 * 3600"),
    ("for: 26h", "for: 30h"),
    ("> 8 * 86400", "> 10 * 86400"),
    ("for: 8d", "for: 10d"),
    ('{runbook=~"backup-.+"}\n          ) > 26', '{runbook=~"status"}\n          ) > 26'),
])
def test_the_rule_unit_tests_fail_when_a_threshold_changes(
    tmp_path: Path, original: str, mutated: str
) -> None:
    text = RULES.read_text()
    assert original in text
    (tmp_path / RULES.name).write_text(text.replace(original, mutated, 1))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0, tested.stdout
    assert "FAILED" in tested.stdout + tested.stderr
