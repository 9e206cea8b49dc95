"""backup-opensearch, restore-opensearch and cleanup-log-indices through the CLI against the lab's
real OpenSearch (path.repo set): what an operator relies on the morning they need a restore.

Every test works on indices and a snapshot repository of its own (`wktest-*`, a per-module
repository name) and removes them; the lab's own `logs-*` indices are only read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab

from runbooks.clients import opensearch_client
from runbooks.inventory import load_inventory
from tests.conftest import cli

pytestmark = pytest.mark.lab

SOURCE_DOCS = {"wktest-src-a": 7, "wktest-src-b": 13}
MANIFEST = "watchkeeper-snapshots"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def opensearch_lab(lab: Lab) -> Lab:
    """The session's lab, with OpenSearch healthy (up only restarts what is down)."""
    opensearch = {c.name: c for c in lab.status().components}.get("opensearch")
    if opensearch is None or not opensearch.healthy:
        lab.up()
    return lab


def write_inventory(directory: Path, lab: Lab, opensearch_url: str) -> Path:
    """An inventory in the production schema with the lab's observability cluster (its
    OpenSearch) and a workload cluster without OpenSearch. Only the hosts these runbooks use:
    the lab's own inventory also carries what other runbooks need, which may move while the
    lab evolves."""
    a = lab.addresses
    (directory / "host_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "wk_environment": "lab"},
        "children": {"lab": {"hosts": {"observability": {}, "k8s-cluster-01": {}}}}}}))
    (directory / "host_vars" / "observability.yml").write_text(yaml.safe_dump({
        "wk_role": "observability",
        "wk_receive_http_urls": [f"http://{a.receiver(0)}:10902"],
        "wk_opensearch_url": opensearch_url}))
    (directory / "host_vars" / "k8s-cluster-01.yml").write_text(yaml.safe_dump({
        "wk_agent_url": f"http://{a.agent(0)}:9090",
        "wk_receive_remote_write_url": f"http://{a.receiver(0)}:19291/api/v1/receive"}))
    return directory


@pytest.fixture(scope="module")
def inventory(opensearch_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_inventory(tmp_path_factory.mktemp("os-inventory") / "inventory", opensearch_lab,
                           f"http://{opensearch_lab.addresses.opensearch}:9200")


@pytest.fixture(scope="module")
def client(inventory: Path) -> Any:
    return opensearch_client(load_inventory(inventory).cluster("observability"))


@pytest.fixture(scope="module")
def repository(client: Any) -> Iterator[str]:
    """A snapshot repository of this module's own; deleted with its snapshots at the end."""
    name = "wktest-" + os.urandom(3).hex()
    manifest_existed = client.indices.exists(index=MANIFEST)
    yield name
    if not manifest_existed:
        client.indices.delete(index=MANIFEST, ignore_unavailable=True)
    if name in client.snapshot.get_repository():
        for snap in client.snapshot.get(repository=name, snapshot="_all")["snapshots"]:
            client.snapshot.delete(repository=name, snapshot=snap["snapshot"])
        client.snapshot.delete_repository(repository=name)


@pytest.fixture(scope="module")
def source_indices(client: Any) -> Iterator[dict[str, int]]:
    """Two indices with known document counts; removed (with any restored copy) at the end."""
    for name, docs in SOURCE_DOCS.items():
        client.indices.create(index=name, body={"settings": {"number_of_shards": 1,
                                                             "number_of_replicas": 0}})
        body: list[dict[str, Any]] = []
        for i in range(docs):
            body += [{"index": {"_index": name, "_id": str(i)}}, {"message": f"line {i}"}]
        assert not client.bulk(body=body, refresh=True)["errors"]
    yield dict(SOURCE_DOCS)
    client.indices.delete(index="wktest-src-*,restored-wktest-*,drill-wktest-*",
                          ignore_unavailable=True)


def run(inventory: Path, tmp_path: Path, runbook: str,
        *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`watchkeeper run RUNBOOK` on the observability cluster; the result and the journal."""
    run_dir = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    result = cli("run", runbook, "-i", str(inventory), "--limit", "observability",
                 "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")})
    journal_path = run_dir / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return result, journal


def step(journal: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in journal["steps"] if s["name"] == name]
    assert found, [s["name"] for s in journal["steps"]]
    return found[0]


def checks(journal_step: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in journal_step["checks"]}


def snapshots(client: Any, repository: str) -> dict[str, str]:
    if repository not in client.snapshot.get_repository():
        return {}
    found = client.snapshot.get(repository=repository, snapshot="_all")["snapshots"]
    return {s["snapshot"]: s["state"] for s in found}


def backup(inventory: Path, tmp_path: Path, repository: str, *args: str):
    return run(inventory, tmp_path, "backup-opensearch", "-e", f"repository={repository}",
               "-e", "indices=wktest-src-*", *args)


def snapshot_of(journal: dict[str, Any]) -> str:
    """The snapshot a backup run took (its name is the prefix plus the run id)."""
    return ("watchkeeper-" + journal["run_id"]).lower()


# --------------------------------------------------------------------------- backup


def test_backup_takes_a_successful_snapshot_and_journals_state_and_shards(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    tmp_path: Path,
) -> None:
    result, journal = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["clusters"] == {"observability": "ok"}
    taken = step(journal, "Take and verify the snapshot")
    assert taken["status"] == "changed"
    found = checks(taken)
    name = snapshot_of(journal)
    assert found["snapshot state"] == {"name": "snapshot state", "status": "ok",
                                       "evidence": f"{name}: SUCCESS", "hint": ""}
    assert found["snapshot shards"]["status"] == "ok"
    # The two indices and the manifest of document counts, one shard each.
    assert found["snapshot shards"]["evidence"] == "3/3 shards successful, 0 failed"
    assert "SUCCESS, 3/3 shards successful, 2 index(es), 20 documents" in taken["message"]
    # What OpenSearch itself says about it.
    info = client.snapshot.get(repository=repository, snapshot=name)["snapshots"][0]
    assert info["state"] == "SUCCESS"
    assert info["shards"]["successful"] == info["shards"]["total"] == 3
    assert sorted(info["indices"]) == sorted([*source_indices, MANIFEST])
    assert info["metadata"]["run_id"] == journal["run_id"]
    assert info["metadata"]["manifest_index"] == MANIFEST
    assert client.get(index=MANIFEST, id=name)["_source"]["doc_counts"] == source_indices
    assert step(journal, "Ensure the snapshot repository")["status"] == "changed"
    repo = client.snapshot.get_repository(repository=repository)[repository]
    assert repo == {"type": "fs", "settings": {"location": repository}}


def test_check_mode_lists_creations_and_deletions_and_changes_nothing(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    tmp_path: Path,
) -> None:
    result, _ = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout
    before = snapshots(client, repository)
    assert len(before) >= 1
    result, journal = backup(inventory, tmp_path, repository, "--check", "-e",
                             "max_count=1", "-e", "min_count=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert journal["check_mode"] is True
    assert snapshots(client, repository) == before  # nothing created, nothing deleted
    would_take = step(journal, "Take and verify the snapshot")["message"]
    assert would_take.startswith(f"would snapshot 2 index(es) into {repository}/")
    assert "wktest-src-a, wktest-src-b" in would_take
    retention = step(journal, "Apply snapshot retention")["message"]
    # The planned snapshot counts as the newest, so every existing one would go.
    assert retention.startswith(f"would delete {len(before)} snapshot(s): ")
    for name in before:
        assert name in retention


def test_retention_keeps_min_count_and_the_newest_and_foreign_snapshots(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    tmp_path: Path,
) -> None:
    for _ in range(2):
        result, _ = backup(inventory, tmp_path, repository, "-e", "max_count=null",
                           "-e", "max_age_days=null", "-e", "min_count=1")
        assert result.returncode == 0, result.stdout
    # A snapshot someone else took: retention never touches it.
    client.snapshot.create(repository=repository, snapshot="manual-keep",
                           body={"indices": "wktest-src-a"}, wait_for_completion=True)
    assert len(snapshots(client, repository)) >= 4

    result, journal = backup(inventory, tmp_path, repository, "-e", "max_count=2",
                             "-e", "min_count=1")
    assert result.returncode == 0, result.stdout
    newest = snapshot_of(journal)
    left = snapshots(client, repository)
    ours = sorted(n for n in left if n.startswith("watchkeeper-"))
    assert len(ours) == 2 and newest in ours, left
    assert left["manual-keep"] == "SUCCESS"
    deleted = step(journal, "Apply snapshot retention")
    assert deleted["status"] == "changed" and deleted["message"].startswith("deleted ")

    # Every managed snapshot is older than the age limit: min_count wins over max_age...
    result, journal = backup(inventory, tmp_path, repository, "-e", "max_age_days=1e-6",
                             "-e", "max_count=null", "-e", "min_count=2")
    assert result.returncode == 0, result.stdout
    left = snapshots(client, repository)
    assert sorted(left) == sorted(["manual-keep", newest, snapshot_of(journal)])

    # ...and with min_count=1 only the newest successful one stays.
    result, journal = backup(inventory, tmp_path, repository, "-e", "max_age_days=1e-6",
                             "-e", "max_count=null", "-e", "min_count=1")
    assert result.returncode == 0, result.stdout
    left = snapshots(client, repository)
    assert sorted(left) == sorted(["manual-keep", snapshot_of(journal)])
    # A deleted snapshot's manifest document goes with it.
    assert not client.exists(index=MANIFEST, id=newest)
    assert client.exists(index=MANIFEST, id=snapshot_of(journal))


@pytest.fixture
def red_index(client: Any) -> Iterator[str]:
    """An index whose only primary can never be assigned (it requires a node that does not
    exist), so it stays red; deleted afterwards so the lab's health is green again."""
    name = "wktest-red-" + os.urandom(3).hex()
    client.indices.create(index=name, body={"settings": {
        "number_of_shards": 1, "number_of_replicas": 0,
        "index.routing.allocation.require._name": "no-such-node"}},
        wait_for_active_shards="0")
    assert client.cluster.health(index=name)["status"] == "red"
    yield name
    client.indices.delete(index=name, ignore_unavailable=True)


def test_partial_snapshot_fails_the_run_and_skips_retention(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    red_index: str, tmp_path: Path,
) -> None:
    indices = f"indices=[wktest-src-*, {red_index}]"
    # Without partial=true the red index is refused before anything changes.
    before = snapshots(client, repository)
    result, journal = backup(inventory, tmp_path, repository, "-e", indices)
    assert result.returncode == 3, result.stdout
    assert red_index in journal["message"] and "partial=true" in journal["message"]
    assert snapshots(client, repository) == before

    result, journal = backup(inventory, tmp_path, repository, "-e", indices,
                             "-e", "partial=true", "-e", "max_count=1", "-e", "min_count=1")
    assert result.returncode == 1, result.stdout
    assert journal["status"] == "failed" and journal["clusters"] == {"observability": "failed"}
    taken = step(journal, "Take and verify the snapshot")
    assert taken["status"] == "failed"
    found = checks(taken)
    name = snapshot_of(journal)
    assert found["snapshot state"]["status"] == "fail"
    assert found["snapshot state"]["evidence"] == f"{name}: PARTIAL"
    assert found["snapshot shards"]["status"] == "fail"
    assert found["snapshot shards"]["evidence"].startswith("3/4 shards successful, 1 failed: "
                                                           f"{red_index}[0]: ")
    assert "PARTIAL" in journal["message"]
    # A failed backup never prunes: retention did not run, every earlier snapshot is there.
    assert "Apply snapshot retention" not in [s["name"] for s in journal["steps"]]
    after = snapshots(client, repository)
    assert after == {**before, name: "PARTIAL"}
    client.snapshot.delete(repository=repository, snapshot=name)


def test_snapshot_module_fails_when_opensearch_refuses_a_red_index(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    red_index: str, tmp_path: Path,
) -> None:
    """Past validate (an index can turn red between validate and the snapshot), the module
    itself fails: OpenSearch refuses a non-partial snapshot of a red index, no success is
    reported and no snapshot is left behind."""
    from runbooks.collection import collection_root, collections_path

    if repository not in client.snapshot.get_repository():
        client.snapshot.create_repository(repository=repository, body={
            "type": "fs", "settings": {"location": repository}})
    args = {"url": load_inventory(inventory).cluster("observability").opensearch_url,
            "repository": repository, "snapshot": "wktest-refused",
            "indices": ["wktest-src-*", red_index]}
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    module = collection_root() / "plugins" / "modules" / "opensearch_snapshot.py"
    proc = subprocess.run([sys.executable, str(module), str(path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(collections_path())},
                          timeout=120)
    out = json.loads(proc.stdout)
    assert out["failed"] is True
    assert "PUT _snapshot/" in out["msg"] and red_index in out["msg"], out["msg"]
    assert "wktest-refused" not in snapshots(client, repository)
    assert not client.exists(index=MANIFEST, id="wktest-refused")  # no orphan manifest


# --------------------------------------------------------------------------- restore


def test_restore_into_renamed_indices_with_equal_document_counts(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    tmp_path: Path,
) -> None:
    result, journal = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout
    name = snapshot_of(journal)

    # Check mode names what it would create and creates nothing.
    result, journal = run(inventory, tmp_path, "restore-opensearch", "--check", "-e",
                          f"repository={repository}")
    assert result.returncode == 0, result.stdout
    message = step(journal, "Restore the snapshot and compare document counts")["message"]
    assert message == (f"would restore {repository}/{name} as: wktest-src-a ->"
                       " restored-wktest-src-a, wktest-src-b -> restored-wktest-src-b")
    assert not client.indices.exists(index="restored-wktest-src-a")

    result, journal = run(inventory, tmp_path, "restore-opensearch", "-e",
                          f"repository={repository}")
    assert result.returncode == 0, result.stdout + result.stderr
    restored = step(journal, "Restore the snapshot and compare document counts")
    assert restored["status"] == "changed"
    for source, docs in source_indices.items():
        target = "restored-" + source
        assert client.count(index=target)["count"] == docs
        assert client.count(index=source)["count"] == docs  # the source is untouched
        check = checks(restored)[f"document count {target}"]
        assert check["status"] == "ok"
        assert check["evidence"] == f"{target}: {docs} documents = snapshot count of {source}"

    # The restored names are taken now: a second restore refuses before restoring anything.
    result, journal = run(inventory, tmp_path, "restore-opensearch", "-e",
                          f"repository={repository}")
    assert result.returncode == 1
    assert "restored-wktest-src-a, restored-wktest-src-b" in journal["message"]
    assert "already exist" in journal["message"]
    client.indices.delete(index="restored-wktest-src-a,restored-wktest-src-b")
    # The temporary copy of the manifest the comparison read from is gone too.
    assert existing(client, "wk-manifest-*") == []

    # A snapshot without a manifest (not taken by backup-opensearch) cannot be compared with
    # recorded counts: refused before restoring anything, saying what to do instead.
    client.snapshot.create(repository=repository, snapshot="manual-nomanifest",
                           body={"indices": "wktest-src-a"}, wait_for_completion=True)
    result, journal = run(inventory, tmp_path, "restore-opensearch", "-e",
                          f"repository={repository}", "-e", "snapshot=manual-nomanifest")
    assert result.returncode == 1
    assert "holds no manifest" in journal["message"] and "compare_with=live" in journal["message"]
    assert not client.indices.exists(index="restored-wktest-src-a")
    client.snapshot.delete(repository=repository, snapshot="manual-nomanifest")


def test_backup_of_many_indices_records_every_count_and_restores_them(
    inventory: Path, client: Any, repository: str, tmp_path: Path
) -> None:
    """OpenSearch caps snapshot metadata at 1024 bytes: the counts of two months of daily
    indices do not fit there, so they go in the manifest the snapshot carries."""
    names = [f"wktest-many-application-logs-2026.01.{day:02d}" for day in range(1, 41)]
    try:
        for i, name in enumerate(names):
            client.indices.create(index=name, body={"settings": {"number_of_shards": 1,
                                                                 "number_of_replicas": 0}})
            client.index(index=name, id="1", body={"n": i})
        client.indices.refresh(index="wktest-many-*")
        result, journal = run(inventory, tmp_path, "backup-opensearch", "-e",
                              f"repository={repository}", "-e", "indices=wktest-many-*",
                              "-e", "min_count=1")
        assert result.returncode == 0, result.stdout
        name = snapshot_of(journal)
        counts = client.get(index=MANIFEST, id=name)["_source"]["doc_counts"]
        assert counts == dict.fromkeys(names, 1)
        assert len(json.dumps(counts)) > 1024
        result, journal = run(inventory, tmp_path, "restore-opensearch", "-e",
                              f"repository={repository}", "-e", f"snapshot={name}",
                              "-e", "indices=wktest-many-application-logs-2026.01.3*")
        assert result.returncode == 0, result.stdout
        restored = checks(step(journal, "Restore the snapshot and compare document counts"))
        assert sorted(restored) == [f"document count restored-{n}" for n in names
                                    if n.endswith(tuple(f".3{d}" for d in range(10)))]
        assert all(c["status"] == "ok" for c in restored.values())
    finally:
        client.indices.delete(index="wktest-many-*,restored-wktest-many-*",
                              ignore_unavailable=True)


def test_restore_fails_when_document_counts_differ(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],
    tmp_path: Path,
) -> None:
    result, journal = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout
    client.index(index="wktest-src-a", id="late", body={"message": "after the backup"},
                 refresh=True)
    try:
        result, journal = run(inventory, tmp_path, "restore-opensearch", "-e",
                              f"repository={repository}", "-e", f"snapshot={snapshot_of(journal)}",
                              "-e", "compare_with=live", "-e", "rename_replacement=drill-$1")
        assert result.returncode == 1, result.stdout
        found = checks(step(journal, "Restore the snapshot and compare document counts"))
        assert found["document count drill-wktest-src-a"]["status"] == "fail"
        assert found["document count drill-wktest-src-a"]["evidence"] == (
            "drill-wktest-src-a: 7 documents, live index wktest-src-a has 8 (-1)")
        assert found["document count drill-wktest-src-b"]["status"] == "ok"
        assert "document counts differ" in journal["message"]
    finally:
        client.delete(index="wktest-src-a", id="late", refresh=True)
        client.indices.delete(index="drill-wktest-*", ignore_unavailable=True)


# --------------------------------------------------------------------------- cleanup


@pytest.fixture
def dated_indices(client: Any) -> Iterator[list[str]]:
    today = datetime.now(UTC).strftime("%Y.%m.%d")
    names = ["wktest-logs-2020.01.01", "wktest-logs-2020.01.02", f"wktest-logs-{today}",
             "wktest-logs-nodate", "wktest-other-2020.01.01"]
    for name in names:
        client.indices.create(index=name, body={"settings": {"number_of_shards": 1,
                                                             "number_of_replicas": 0}})
    yield names
    client.indices.delete(index=",".join(names), ignore_unavailable=True)


def existing(client: Any, pattern: str) -> list[str]:
    return sorted(r["index"] for r in client.cat.indices(index=pattern, format="json"))


def test_cleanup_deletes_exactly_the_old_matching_indices(
    inventory: Path, client: Any, dated_indices: list[str], tmp_path: Path
) -> None:
    everything = existing(client, "*")
    args = ("-e", "pattern=wktest-logs-*", "-e", "older_than_days=30")
    result, journal = run(inventory, tmp_path, "cleanup-log-indices", "--check", *args)
    assert result.returncode == 0, result.stdout
    message = step(journal, "Delete indices older than the limit")["message"]
    assert message == ("would delete 2 index(es) older than 30 day(s): wktest-logs-2020.01.01,"
                       " wktest-logs-2020.01.02; keep 2")
    assert existing(client, "*") == everything  # check mode deleted nothing

    # By creation date every one of them is new: nothing goes.
    result, journal = run(inventory, tmp_path, "cleanup-log-indices", *args, "-e",
                          "date_source=creation")
    assert result.returncode == 0, result.stdout
    assert existing(client, "*") == everything

    result, journal = run(inventory, tmp_path, "cleanup-log-indices", *args)
    assert result.returncode == 0, result.stdout
    assert step(journal, "Delete indices older than the limit")["status"] == "changed"
    gone = sorted(set(everything) - set(existing(client, "*")))
    assert gone == ["wktest-logs-2020.01.01", "wktest-logs-2020.01.02"]
    assert "wktest-other-2020.01.01" in existing(client, "wktest-*")  # not matching: kept
    assert "wktest-logs-nodate" in existing(client, "wktest-*")  # no date: kept
    assert [n for n in everything if n.startswith("logs-")] == existing(client, "logs-*")


# --------------------------------------------------------------------------- bad input


def test_wrong_opensearch_url_is_a_precondition_failure_naming_the_field(
    opensearch_lab: Lab, client: Any, source_indices: dict[str, int], tmp_path: Path
) -> None:
    wrong = f"http://{opensearch_lab.addresses.opensearch}:1"  # right host, nothing listening
    inventory = write_inventory(tmp_path / "inventory", opensearch_lab, wrong)
    repository = "wktest-never-" + os.urandom(3).hex()
    for runbook in ("backup-opensearch", "restore-opensearch", "cleanup-log-indices"):
        extra = ("-e", f"repository={repository}") if runbook != "cleanup-log-indices" else ()
        result, journal = run(inventory, tmp_path, runbook, *extra)
        assert result.returncode == 3, (runbook, result.stdout, result.stderr)
        message = json.loads(result.stdout)["message"]
        assert f"wk_opensearch_url {wrong}" in message and "connection refused" in message
        assert f"Fix wk_opensearch_url in {inventory}" in message
        assert [s["name"] for s in journal["steps"]] == ["validate"]  # no playbook ran
    assert repository not in client.snapshot.get_repository()


def test_missing_opensearch_url_and_bad_params_exit_2_naming_the_field(
    inventory: Path, tmp_path: Path
) -> None:
    env = {"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")}
    # A workload cluster has no OpenSearch.
    result = cli("run", "backup-opensearch", "-i", str(inventory), "--limit", "k8s-cluster-01",
                 "--output", "json", env=env)
    assert result.returncode == 2
    message = json.loads(result.stdout)["message"]
    assert "k8s-cluster-01: wk_opensearch_url: expected a value" in message
    for runbook, param, field in [
        ("backup-opensearch", "min_count=0", "min_count"),
        ("backup-opensearch", "max_count=1", "max_count"),  # below the default min_count 3
        ("backup-opensearch", "indices=*", "indices"),
        ("restore-opensearch", "rename_replacement=$1", "rename_replacement"),
        ("cleanup-log-indices", "pattern=.kibana*", "pattern"),
        ("cleanup-log-indices", "older_than_days=0", "older_than_days"),
    ]:
        result = cli("run", runbook, "-i", str(inventory), "--limit", "observability", "-e", param,
                     "--output", "json", env=env)
        assert result.returncode == 2, (runbook, param, result.stdout)
        message = json.loads(result.stdout)["message"]
        assert message.startswith(f"bad parameter for {runbook}: ")
        assert field in message, message
