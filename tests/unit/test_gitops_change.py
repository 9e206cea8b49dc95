"""A chart change in a Kustomization (plugins/module_utils/gitops_change.py): the version and
the values land where kustomize reads them, the values diff shows the change, a wrong chart
name is refused naming the charts there; and the upgrade-chart / gitops-rollback parameters
refuse values YAML read as numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.watchkeeper.platform.plugins.module_utils import gitops_change, kube
from pydantic import ValidationError

from runbooks.gitops.gitops import GitopsRollbackParams
from runbooks.upgrades.upgrade_chart import UpgradeChartParams


def kustomization(tmp_path: Path, charts: list[dict[str, object]]) -> Path:
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"kind": "Kustomization", "helmCharts": charts, "patches": [{"path": "p.yaml"}]}))
    return tmp_path


def test_version_and_values_file(tmp_path: Path) -> None:
    directory = kustomization(tmp_path, [{"name": "thanos-store", "version": "1.1.0",
                                          "valuesFile": "values.yaml"}])
    (tmp_path / "values.yaml").write_text("image:\n  tag: ''\nstorage: 10Gi\n")
    result = gitops_change.edit_chart(str(directory), "", "1.0.0", {"image": {"tag": "v1"}})
    assert (result["from_version"], result["to_version"]) == ("1.1.0", "1.0.0")
    assert sorted(result["files"]) == ["kustomization.yaml", "values.yaml"]
    written = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert written["helmCharts"][0]["version"] == "1.0.0"
    assert written["patches"] == [{"path": "p.yaml"}]  # the rest kept
    values = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert values == {"image": {"tag": "v1"}, "storage": "10Gi"}  # merged, not replaced
    assert "+  tag: v1" in result["values_diff"]


def test_inline_values_and_an_unchanged_version_touch_only_what_changes(tmp_path: Path) -> None:
    directory = kustomization(tmp_path, [{"name": "agent", "version": "2.0.0",
                                          "valuesInline": {"shards": 1}}])
    result = gitops_change.edit_chart(str(directory), "agent", "2.0.0", {})
    assert result["files"] == []
    result = gitops_change.edit_chart(str(directory), "agent", "", {"shards": 2})
    assert result["files"] == ["kustomization.yaml"]
    written = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert written["helmCharts"][0]["valuesInline"] == {"shards": 2}


def test_the_chart_must_be_named_when_ambiguous_or_exist(tmp_path: Path) -> None:
    directory = str(kustomization(tmp_path, [{"name": "a", "version": "1"},
                                             {"name": "b", "version": "1"}]))
    with pytest.raises(kube.KubeFailure, match=r"2 charts \(a, b\)"):
        gitops_change.edit_chart(directory, "", "2", {})
    with pytest.raises(kube.KubeFailure, match="no chart 'c' in the Kustomization"):
        gitops_change.edit_chart(directory, "c", "2", {})


def test_numbers_are_refused_where_text_is_meant() -> None:
    with pytest.raises(ValidationError, match=r"1\.10 would become 1\.1"):
        UpgradeChartParams(version=1.1)  # type: ignore[arg-type]
    assert UpgradeChartParams(version="1.10").version == "1.10"
    assert GitopsRollbackParams(commit="abc123,def456").commit == ("abc123", "def456")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="read as a number"):
        GitopsRollbackParams(commit=[123456])  # type: ignore[list-item]
