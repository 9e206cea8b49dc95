"""dr-drill against the lab's real OpenSearch: the opensearch-loss scenario destroys indices for
real, restore-opensearch brings them back in place, and the measures come from data.

Works on this module's own indices and snapshot repository (the fixtures of the OpenSearch
runbook tests); the lab's own logs-* indices are never touched.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.lab.test_opensearch_runbooks import (  # noqa: F401 (fixtures)
    backup,
    client,
    inventory,
    opensearch_lab,
    repository,
    run,
    snapshot_of,
    source_indices,
    step,
)

pytestmark = pytest.mark.lab

LOSS = "opensearch-loss"
SCOPE = "indices=wktest-src-*"


def counts(client: Any, names: list[str]) -> dict[str, int | None]:  # noqa: F811
    client.indices.refresh(index="wktest-src-*", ignore_unavailable=True)
    return {n: (int(client.count(index=n)["count"]) if client.indices.exists(index=n)
                else None) for n in names}


def drill(inventory: Path, tmp_path: Path, repository: str,  # noqa: F811
          *args: str) -> tuple[Any, dict[str, Any]]:
    return run(inventory, tmp_path, "dr-drill", "-e", f"scenario={LOSS}",
               "-e", f"repository={repository}", "-e", SCOPE,
               "-e", "rto_target=5m", "-e", "rpo_target=1h", *args)


def test_opensearch_loss_is_recovered_in_place_and_measured_from_data(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    result, journal = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = snapshot_of(journal)
    # Two documents written after the snapshot: the drill loses them (that is the RPO).
    late: list[dict[str, Any]] = []
    for i in range(2):
        late += [{"index": {"_index": "wktest-src-a", "_id": f"late-{i}"}},
                 {"message": "after the backup"}]
    assert not client.bulk(body=late, refresh=True)["errors"]
    names = sorted(source_indices)
    before = counts(client, names)
    assert before == {"wktest-src-a": 9, "wktest-src-b": 13}

    # Check mode: the plan, nothing destroyed.
    result, journal = drill(inventory, tmp_path, repository, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = step(journal, f"Plan {LOSS} (the indices it deletes, the snapshot it restores,"
                         " its age)")["message"]
    assert plan.startswith("deletes 2 index(es) (wktest-src-a, wktest-src-b; 22 documents),"
                           f" restores them in place from {repository}/{snapshot} (taken ")
    assert counts(client, names) == before

    # The drill: destroyed, restored in place, measured.
    result, journal = drill(inventory, tmp_path, repository)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = Path(journal["run_dir"])
    assert counts(client, names) == dict(source_indices)  # what the snapshot held
    entry = json.loads((run_dir / "drill.json").read_text())["scenarios"][0]
    assert entry["scenario"] == LOSS and entry["passed"] is True
    assert 0 < entry["rto_seconds"] < 300
    assert entry["targets"] == {"rto_seconds": 300.0, "rpo_seconds": 3600.0}
    stages = entry["stage_seconds"]
    assert list(stages) == ["fault_injected", "detected", "recovery_started",
                            "component_ready", "caught_up"]
    assert list(stages.values()) == sorted(stages.values())  # each after the one before
    assert stages["caught_up"] == pytest.approx(entry["rto_seconds"], abs=0.01)
    info = client.snapshot.get(repository=repository, snapshot=snapshot)["snapshots"][0]
    fault = entry["timeline"]["fault_injected"]
    assert entry["evidence"]["snapshot"]["snapshot"] == snapshot
    # RPO: the fault back to the snapshot's end, as OpenSearch recorded it.
    from datetime import datetime

    fault_epoch = datetime.fromisoformat(fault.replace("Z", "+00:00")).timestamp()
    assert entry["rpo_seconds"] == pytest.approx(
        fault_epoch - info["end_time_in_millis"] / 1000, abs=0.01)
    integrity = {c["name"]: c for c in entry["checks"]}[f"{LOSS} integrity wktest-src-a"]
    assert integrity["status"] == "ok"
    assert "2 written after the snapshot are lost" in integrity["evidence"]
    # The fault was recorded before it happened, in the run directory.
    record = json.loads((run_dir / f"dr-observability-{LOSS}.json").read_text())
    assert record["destroys"] == names
    # JUnit: one case per measure; the metrics of the drill.
    cases = {c.get("name", "") for c in ET.parse(run_dir / "junit.xml").iter("testcase")}
    for measure in ("RTO", "RPO", "integrity wktest-src-a", "integrity wktest-src-b"):
        assert any(name.endswith(f"{LOSS} {measure}") for name in cases), cases
    prom = tmp_path / "state" / "metrics" / "watchkeeper_dr.prom"
    samples = {(s.name, s.labels["scenario"]): s.value for f in
               text_string_to_metric_families(prom.read_text()) for s in f.samples}
    assert samples[("watchkeeper_dr_rto_seconds", LOSS)] == pytest.approx(
        entry["rto_seconds"], abs=0.01)
    assert samples[("watchkeeper_dr_passed", LOSS)] == 1


def test_a_missed_objective_fails_with_a_junit_failure_naming_rto_and_still_recovers(
    inventory: Path, client: Any, repository: str, source_indices: dict[str, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    result, _ = backup(inventory, tmp_path, repository, "-e", "min_count=1")
    assert result.returncode == 0, result.stdout + result.stderr
    result, journal = drill(inventory, tmp_path, repository, "-e", "rto_target=1ms")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"drill {LOSS} failed: RTO " in journal["message"]
    assert counts(client, sorted(source_indices)) == dict(source_indices)
    run_dir = Path(journal["run_dir"])
    failures = [c for c in ET.parse(run_dir / "junit.xml").iter("testcase")
                if c.find("failure") is not None]
    assert failures and failures[0].get("name", "").endswith(f"{LOSS} RTO"), \
        [c.get("name") for c in failures]
    assert json.loads((run_dir / "drill.json").read_text())["passed"] is False
