"""The release notes' breaking changes as data (plugins/module_utils/release_notes.py) and
their checks on rendered objects (gitops_change.version_notes): which changes an upgrade
crosses, what refuses it, downgrades; the rollout hold written to and removed from a
Kustomization (gitops_rollout.set_partition)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    gitops_change,
    gitops_rollout,
    release_notes,
)


def test_an_upgrade_crosses_the_notes_between_its_versions_only() -> None:
    ids = [n["id"] for n in release_notes.between(release_notes.THANOS, "v0.31.0", "v0.40.1")]
    assert ids == ["ketama-min-endpoints", "rf2-quorum", "capnproto-listener"]
    ids = [n["id"] for n in release_notes.between(release_notes.THANOS, "v0.38.0", "v0.40.1")]
    assert ids == ["capnproto-listener"]
    assert release_notes.between(release_notes.THANOS, "v0.40.1", "v0.38.0") == []
    assert release_notes.parse("2.42.0+ds") == (2, 42, 0)


def workload(image: str, args: list[str], kind: str = "StatefulSet") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "w"}, "spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": image, "args": args}]}}}}


def ring(endpoints: int) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": "ring"}, "data": {"hashrings.json":
            json.dumps([{"hashring": "default", "algorithm": "ketama",
                         "endpoints": [f"r{i}:10901" for i in range(endpoints)]}])}}


def test_ketama_with_fewer_endpoints_than_rf_refuses_an_upgrade_past_0_32() -> None:
    args = ["receive", "--receive.replication-factor=3"]
    before = [workload("quay.io/thanos/thanos:v0.31.0", args), ring(2)]
    after = [workload("quay.io/thanos/thanos:v0.40.1", args), ring(2)]
    notes, downgrades = gitops_change.version_notes(before, after)
    problems = {n["id"]: n["problems"] for n in notes}
    assert problems["ketama-min-endpoints"] == [
        "hashring 'default' has 2 endpoint(s) < replication factor 3"]
    assert problems["rf2-quorum"] == [] and downgrades == []
    notes, _ = gitops_change.version_notes(before, [after[0], ring(3)])
    assert all(not n["problems"] for n in notes)


def test_a_prometheus_3_agent_needs_the_agent_flag() -> None:
    before = [workload("quay.io/prometheus/prometheus:v2.42.0", ["--enable-feature=agent"])]
    bad = [workload("quay.io/prometheus/prometheus:v3.16.0", ["--enable-feature=agent"])]
    good = [workload("quay.io/prometheus/prometheus:v3.16.0", ["--agent"])]
    problems = {n["id"]: n["problems"] for n in gitops_change.version_notes(before, bad)[0]}
    assert problems["agent-flag"] and "full server" in problems["agent-flag"][0]
    assert problems["removed-feature-flags"] == [
        "--enable-feature=agent is removed in 3.0: --agent replaces it"]
    assert all(not n["problems"] for n in gitops_change.version_notes(before, good)[0])


def test_a_downgrade_is_named_and_crosses_no_note() -> None:
    notes, downgrades = gitops_change.version_notes(
        [workload("quay.io/thanos/thanos:v0.40.1", [])],
        [workload("quay.io/thanos/thanos:v0.38.0", [])])
    assert notes == [] and downgrades == ["StatefulSet/w thanos: v0.40.1 -> v0.38.0"]


def test_the_rollout_hold_is_added_lowered_and_removed(tmp_path: Path) -> None:
    kfile = tmp_path / "kustomization.yaml"
    kfile.write_text(yaml.safe_dump({"kind": "Kustomization", "patches": [{"path": "a.yaml"}]}))
    assert gitops_rollout.held_partition(str(tmp_path)) is None
    changed = gitops_rollout.set_partition(str(tmp_path), "kustomization.yaml", "recv", 3)
    assert sorted(changed) == ["kustomization.yaml", "watchkeeper-rollout.yaml"]
    assert gitops_rollout.held_partition(str(tmp_path)) == 3
    assert gitops_rollout.set_partition(str(tmp_path), "kustomization.yaml", "recv", 1) == [
        "watchkeeper-rollout.yaml"]
    assert gitops_rollout.held_partition(str(tmp_path)) == 1
    assert gitops_rollout.set_partition(str(tmp_path), "kustomization.yaml", "recv", 1) == []
    gitops_rollout.set_partition(str(tmp_path), "kustomization.yaml", "recv", None)
    assert yaml.safe_load(kfile.read_text())["patches"] == [{"path": "a.yaml"}]
    assert not (tmp_path / "watchkeeper-rollout.yaml").exists()


def test_a_chart_behind_its_repository_names_the_newest_and_the_breaking_changes() -> None:
    from ansible_collections.watchkeeper.platform.plugins.module_utils import checklist
    from ansible_collections.watchkeeper.platform.plugins.module_utils import (
        checklist_probe as probe,
    )

    index = {"thanos-receive": [{"version": "1.0.0", "appVersion": "v0.31.0"},
                                {"version": "1.2.0", "appVersion": "v0.40.1"},
                                {"version": "1.3.0-rc.1", "appVersion": "v0.41.0-rc.1"}]}
    row = probe.chart_row("obs-thanos-receive", {"name": "thanos-receive",
                                                 "version": "1.0.0"}, index)
    assert row["newest"] == "1.2.0"  # a pre-release is not offered
    result = checklist.evaluate_chart(row)
    assert result["status"] == "warn"
    assert "chart 1.0.0, newest 1.2.0 (app v0.31.0 -> v0.40.1)" in result["evidence"]
    assert "thanos 0.32.0: the ketama hashring algorithm refuses" in result["evidence"]
    assert "-e application=obs-thanos-receive -e version=1.2.0" in result["hint"]
    current = probe.chart_row("a", {"name": "thanos-receive", "version": "1.2.0"}, index)
    assert checklist.evaluate_chart(current)["status"] == "ok"
    assert checklist.evaluate_chart(probe.chart_row("a", {"name": "x", "version": "1"},
                                                    "http://repo/index.yaml: refused"))[
        "status"] == "skipped"
