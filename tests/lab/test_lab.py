"""The lab against its own promises: real data flowing from agents to Query and to S3,
OpenSearch seeded and snapshot-ready, health that tells the truth, a clean `down`.

Tests run in file order; the last one takes the lab down."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from watchkeeper_lab import Lab, process, topology

from runbooks.clients import opensearch_client, s3_client
from runbooks.inventory import load_inventory
from tests.conftest import cli

pytestmark = pytest.mark.lab

T = TypeVar("T")


def poll(what: str, fetch: Callable[[], T | None], deadline_s: float, every: float = 3.0) -> T:
    """Bounded polling that names what it waited for."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fetch()
        except OSError as exc:
            last = exc
        if last:
            return last  # type: ignore[return-value]
        time.sleep(every)
    raise TimeoutError(f"waited {deadline_s:.0f}s for {what}; last: {last!r}")


def query(lab: Lab, promql: str) -> list[dict[str, Any]]:
    url = (f"http://{lab.addresses.query}:10902/api/v1/query?"
           + urllib.parse.urlencode({"query": promql}))
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]  # type: ignore[no-any-return]


def observability(lab: Lab):
    return load_inventory(lab.inventory_dir).cluster("observability")


def test_inventory_is_valid_production_schema(lab: Lab) -> None:
    result = cli("inventory", "check", "-i", str(lab.inventory_dir))
    assert result.returncode == 0, result.stderr
    inventory = load_inventory(lab.inventory_dir)
    assert {c.name for c in inventory.clusters} == {*topology.CLUSTERS, "observability"}
    text = "".join(p.read_text() for p in lab.inventory_dir.rglob("*.yml"))
    for secret in lab.env().values():
        assert secret not in text  # references only


def test_canary_of_each_cluster_is_queryable_through_thanos_query(lab: Lab) -> None:
    def both() -> dict[str, float] | None:
        rows = query(lab, "watchkeeper_lab_canary_total")
        found = {r["metric"].get("cluster"): float(r["value"][1]) for r in rows}
        return found if set(topology.CLUSTERS) <= set(found) else None

    values = poll("the canary of both clusters in Thanos Query", both, 180)
    epoch = float((lab.dir / "canary-epoch").read_text())
    for cluster in topology.CLUSTERS:
        # The counter is seconds since the epoch: a fresh sample is close to now - epoch.
        assert 0 <= time.time() - epoch - values[cluster] < 120, (cluster, values)


def test_status_runbook_passes_against_the_lab(lab: Lab, tmp_path: Path) -> None:
    result = cli("run", "status", "-i", str(lab.inventory_dir), "--run-dir",
                 str(tmp_path / "run"), "--output", "json",
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    summary = json.loads(result.stdout)
    assert result.returncode == 0, (tmp_path / "run" / "report.md").read_text()
    assert summary["clusters"] == {c: "ok" for c in (*topology.CLUSTERS, "observability")}


def test_opensearch_has_the_daily_log_indices_and_an_fs_repository(lab: Lab) -> None:
    client = opensearch_client(observability(lab))
    indices = client.cat.indices(index="logs-*", format="json")
    names = sorted(i["index"] for i in indices)
    assert len(names) == 5, names
    assert all(int(i["docs.count"]) == 40 for i in indices)
    location = str(lab.dir / "opensearch" / "snapshots" / "test-repo")
    assert client.snapshot.create_repository(
        repository="test-repo", body={"type": "fs", "settings": {"location": location}}
    )["acknowledged"]
    assert client.snapshot.verify_repository(repository="test-repo")["nodes"]


def test_buckets_are_versioned(lab: Lab) -> None:
    s3 = s3_client(observability(lab))
    for bucket in (topology.BLOCKS_BUCKET, topology.BACKUPS_BUCKET):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_a_block_with_the_receivers_external_labels_reaches_s3(lab: Lab) -> None:
    s3 = s3_client(observability(lab))

    def block() -> dict[str, Any] | None:
        listing = s3.list_objects_v2(Bucket=topology.BLOCKS_BUCKET)
        for item in listing.get("Contents", []):
            if item["Key"].endswith("/meta.json"):
                body = s3.get_object(Bucket=topology.BLOCKS_BUCKET, Key=item["Key"])["Body"]
                return json.loads(body.read())  # type: ignore[no-any-return]
        return None

    meta = poll("a block uploaded by a receiver", block, 480, every=10)
    labels = meta["thanos"]["labels"]
    assert labels["receive_replica"].startswith("thanos-receive-")
    assert labels["tenant_id"] == topology.TENANT
    assert meta["maxTime"] > meta["minTime"]


def test_killed_component_is_unhealthy_and_up_brings_it_back(lab: Lab) -> None:
    name = f"canary-{topology.CLUSTERS[0]}"
    before = {c.name: c for c in lab.status().components}
    victim = before[name]
    assert victim.healthy and victim.pid
    os.kill(victim.pid, signal.SIGKILL)
    poll(f"{name} to be reported down",
         lambda: not {c.name: c for c in lab.status().components}[name].healthy, 30, 1)
    status = cli("lab", "status", "--lab-dir", str(lab.dir), "--output", "json")
    assert status.returncode == 1  # not every component healthy
    data = json.loads(status.stdout)
    row = next(c for c in data["components"] if c["name"] == name)
    assert row["healthy"] is False and row["pid"] is None
    assert set(row) >= {"name", "address", "version", "pid", "healthy"}
    pods = [c for c in data["components"] if c["name"].startswith("pod/")]
    assert any(c["name"] == "pod/monitoring/thanos-receive-0" and c["healthy"] for c in pods)
    lab.up()
    after = {c.name: c for c in lab.status().components}
    assert after[name].healthy and after[name].pid != victim.pid
    # The others kept running: up only restarts what is down.
    assert after["prometheus-ha-0"].pid == before["prometheus-ha-0"].pid
    receiver = "pod/monitoring/thanos-receive-0"
    assert after[receiver].pid == before[receiver].pid


@pytest.mark.lab_teardown
def test_down_stops_every_lab_process_and_touches_only_the_lab_dir(
    lab: Lab, tmp_path: Path
) -> None:
    sentinel = lab.dir.parent / "outside.txt"
    sentinel.write_text("not the lab's")
    if lab.podnet is not None:
        # A crashed lab first (every process killed at once): its namespaces and veths are
        # left behind; the next `up` removes them by name and starts cleanly.
        for pid in lab.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        poll("every lab process gone", lambda: not any(
            process.Record(int(r["pid"]), int(r["start_ticks"]), "").alive()
            for r in lab._all_records()) or None, 30, 0.5)
        assert lab.podnet.own_namespaces(), "a crash leaves the namespaces behind"
        lab.up()
        assert all(c.healthy for c in lab.status().components), lab.status()
    pids = lab.pids()
    assert len(pids) >= 18  # control plane, node agent, pods, storage, canaries
    lab.down()
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or ") Z " in stat.read_text(), f"pid {pid} still running"
    assert sentinel.read_text() == "not the lab's"
    assert sorted(p.name for p in lab.dir.parent.iterdir()) == ["lab", "outside.txt"]
    assert all(not c.healthy for c in lab.status().components if c.name != "git")
    if lab.podnet is not None:  # no namespace, veth, bridge or address of the lab remains
        tag = f"wk{lab.podnet.tag}"
        netns = json.loads(subprocess.run(["ip", "-j", "netns", "list"], capture_output=True,
                                          text=True).stdout or "[]")
        assert not [n["name"] for n in netns if n["name"].startswith(tag)]
        links = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True,
                                          text=True, check=True).stdout)
        assert not [link["ifname"] for link in links if link["ifname"].startswith(tag)]
        assert not [a["local"] for link in links for a in link.get("addr_info", [])
                    if a["local"].startswith(lab.addresses.prefix + ".")]
