"""The pure parts of agent sharding (plugins/module_utils/agent_shards.py): names, the
hashmod assignment, the rendered configuration and the shard StatefulSet. The lab test
(tests/lab/test_scale_agents.py) proves the assignment equals the real Prometheus's."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_shards

CONFIG: dict[str, Any] = {
    "global": {"external_labels": {"cluster": "c1"}},
    "scrape_configs": [
        {"job_name": "self", "static_configs": [{"targets": ["10.0.0.1:9090"]}]},
        {"job_name": "apps", "static_configs": [{"targets": ["a:80", "b:80", "c:80"]}],
         "relabel_configs": [{"source_labels": ["__address__"], "target_label": "host"}]},
    ],
    "remote_write": [{"url": "http://receive:19291/api/v1/receive"}],
}


@pytest.mark.parametrize(("name", "shard"), [
    ("prometheus-agent", 0), ("prometheus-agent-shard-1", 1), ("prometheus-agent-shard-12", 12),
    ("prometheus-agent-shard-0", None), ("prometheus-agent-2", None), ("other-shard-1", None),
])
def test_shard_numbers_come_from_the_statefulset_name(name: str, shard: int | None) -> None:
    assert agent_shards.shard_of(name, "prometheus-agent") == shard


def test_every_target_goes_to_exactly_one_shard_and_one_shard_keeps_all() -> None:
    targets = [f"10.0.{i // 250}.{i % 250}:9100" for i in range(1000)]
    parts = agent_shards.assignment(targets, 4)
    assert sorted(t for part in parts.values() for t in part) == sorted(targets)
    assert all(150 < len(part) < 350 for part in parts.values()), {
        k: len(v) for k, v in parts.items()}  # md5 spreads them
    assert agent_shards.assignment(targets, 1) == {0: sorted(targets)}
    # Stable: the same target lands on the same shard every time.
    assert agent_shards.assignment(targets, 4) == parts


def test_rendering_adds_the_rules_to_every_job_and_removes_them_for_one_shard() -> None:
    rendered = agent_shards.render(CONFIG, 1, 3)
    for job in rendered["scrape_configs"]:
        hashmod, keep = job["relabel_configs"][-2:]
        assert hashmod == {"source_labels": ["__address__"], "modulus": 3,
                           "target_label": agent_shards.SHARD_LABEL, "action": "hashmod"}
        assert keep == {"source_labels": [agent_shards.SHARD_LABEL], "regex": "1",
                        "action": "keep"}
    assert rendered["scrape_configs"][1]["relabel_configs"][0]["target_label"] == "host"
    assert rendered["global"] == CONFIG["global"]  # no shard external label
    assert agent_shards.modulus_of(rendered) == 3
    # Re-rendering a sharded file replaces the rules instead of stacking them.
    again = agent_shards.render(rendered, 0, 2)
    rules = again["scrape_configs"][1]["relabel_configs"]
    assert [r.get("action", "replace") for r in rules] == ["replace", "hashmod", "keep"]
    assert rules[1]["modulus"] == 2 and rules[2]["regex"] == "0"
    assert agent_shards.render(rendered, 0, 1) == CONFIG
    assert agent_shards.modulus_of(CONFIG) == 1


def test_a_shard_statefulset_is_the_base_with_its_own_name_selector_and_config() -> None:
    base = {"metadata": {"name": "prometheus-agent", "namespace": "c1", "uid": "x",
                         "resourceVersion": "9", "labels": {"app.kubernetes.io/name": "a"}},
            "spec": {"replicas": 1, "serviceName": "prometheus-agent",
                     "selector": {"matchLabels": {"app.kubernetes.io/name": "a"}},
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "a"},
                                               "annotations": {"ip": "10.0.0.1"}},
                                  "spec": {"volumes": [{"name": "config", "configMap": {
                                      "name": "prometheus-agent-config"}}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}}]},
            "status": {"replicas": 1}}
    sts = agent_shards.shard_statefulset(base, 2, "prometheus-agent-shard-2-config",
                                         {"ip": "10.0.0.9"})
    assert sts["metadata"]["name"] == "prometheus-agent-shard-2"
    assert "uid" not in sts["metadata"] and "status" not in sts
    assert sts["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "a",
                                                      agent_shards.SHARD_KEY: "2"}
    template = sts["spec"]["template"]
    assert template["metadata"]["labels"][agent_shards.SHARD_KEY] == "2"
    assert template["metadata"]["annotations"]["ip"] == "10.0.0.9"
    assert template["spec"]["volumes"][0]["configMap"]["name"] == \
        "prometheus-agent-shard-2-config"
    assert base["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == \
        "prometheus-agent-config"  # the base is not modified


def test_moves_name_every_target_whose_shard_changes() -> None:
    targets = [f"10.0.0.{i}:9100" for i in range(20)]
    two = agent_shards.assignment(targets, 2)
    # From one shard to two: exactly the targets that hash to shard 1 leave shard 0.
    moves = agent_shards.moves({0: targets}, targets, 2)
    assert moves == [(t, (0,), 1) for t in two[1]]
    # Back to one: shard 1's targets return to shard 0; nothing else moves.
    assert agent_shards.moves(two, targets, 1) == [(t, (1,), 0) for t in two[1]]
    # A target on no shard, or on two, is a move too (to where it belongs).
    current = {0: [targets[0]], 1: [targets[0]]}
    found = dict((t, (now, to)) for t, now, to in agent_shards.moves(current, targets[:2], 1))
    assert found == {targets[0]: ((0, 1), 0), targets[1]: ((), 0)}
    assert agent_shards.moves(two, targets, 2) == []


def test_a_partition_is_each_target_on_exactly_one_shard() -> None:
    from runbooks.agents.scale_agents import partition_problems

    good = {"a-0": (["t1", "t2"], ["t3"]), "a-shard-1-0": (["t3"], ["t1", "t2"])}
    assert partition_problems(good, 2) == []
    doubled = {"a-0": (["t1", "t2"], []), "a-shard-1-0": (["t2"], ["t1"])}
    assert partition_problems(doubled, 2) == ["t2 on 2 shards (a-0, a-shard-1-0)"]
    # A Prometheus that has not applied its targets yet reports them nowhere.
    lost = {"a-0": ([], []), "a-shard-1-0": (["t3"], ["t1"])}
    assert partition_problems(lost, 2) == ["t1 on 0 shards (none)"]
    assert partition_problems(good, 3)[0] == "2 Ready shards, 3 wanted"


def test_replicas_other_than_one_are_refused_naming_sharding() -> None:
    from pydantic import ValidationError

    from runbooks.agents.scale_agents import ScaleAgentsParams

    with pytest.raises(ValidationError, match="agents are sharded, not HA-replicated"):
        ScaleAgentsParams(shards=1, replicas=2)
    with pytest.raises(ValidationError, match="shards"):
        ScaleAgentsParams(shards=0)
    assert ScaleAgentsParams(shards=2).replicas == 1
