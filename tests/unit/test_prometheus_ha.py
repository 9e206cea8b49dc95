"""What makes HA replicas of a Prometheus server safe to add, judged without a cluster (the
lab test tests/lab/test_scale_prometheus.py runs the real servers and Query)."""

from __future__ import annotations

import pytest

from runbooks.collection import module_utils

ha = module_utils("prometheus_ha")


def test_replicas_labelled_with_their_own_pod_names_pass() -> None:
    labels = {"prometheus-0": {"cluster": "c", "replica": "prometheus-0"},
              "prometheus-1": {"cluster": "c", "replica": "prometheus-1"}}
    assert ha.replica_label_problems(labels, "replica") == []


def test_an_unexpanded_label_names_the_feature_flag() -> None:
    problems = ha.replica_label_problems({"prometheus-0": {"replica": "${POD_NAME}"}},
                                         "replica")
    assert len(problems) == 1
    assert "not expanded" in problems[0] and "expand-external-labels" in problems[0]


def test_a_constant_label_shared_by_two_replicas_is_refused() -> None:
    labels = {"prometheus-0": {"replica": "a"}, "prometheus-1": {"replica": "a"}}
    problems = ha.replica_label_problems(labels, "replica")
    assert any("not its pod name" in p for p in problems)
    assert any("prometheus-0, prometheus-1 share replica='a'" in p for p in problems)


def test_a_missing_label_says_how_to_add_it() -> None:
    problems = ha.replica_label_problems({"prometheus-0": {"cluster": "c"}}, "prom_replica")
    assert problems == [problems[0]] and "no external label 'prom_replica'" in problems[0]
    assert "${POD_NAME}" in problems[0]


def test_query_that_keeps_the_replica_label_does_not_deduplicate() -> None:
    rows = [{"metric": {"job": "a", "replica": "prometheus-0"}, "value": 1.0}]
    problem = ha.dedup_problem(rows, "replica")
    assert problem and "--query.replica-label=replica" in problem
    assert ha.dedup_problem([{"metric": {"job": "a"}, "value": 1.0}], "replica") is None


def test_replicas_must_scrape_the_same_targets() -> None:
    assert ha.target_difference(["a:1", "b:1"], ["a:1", "b:1"]) == ""
    assert ha.target_difference(["a:1", "b:1"], ["a:1", "c:1"]) == "lacks b:1; also scrapes c:1"


def test_the_plan_drains_before_it_shrinks() -> None:
    down = ha.plan("prometheus", 3, 1)
    assert down == ["prometheus-2's remote-write queue drained",
                    "prometheus-1's remote-write queue drained",
                    "scale StatefulSet prometheus to 1 replicas (claims kept)"]
    assert ha.plan("prometheus", 1, 2)[0] == "scale StatefulSet prometheus to 2 replicas"
    assert ha.plan("prometheus", 2, 2) == []


def test_queue_drained_needs_nothing_pending_and_no_lag() -> None:
    agent_health = module_utils("agent_health")
    promtext = module_utils("promtext")

    def metrics(pending: float, newest: float, sent: float) -> object:
        return promtext.parse(
            f'prometheus_remote_storage_samples_pending{{remote_name="r",url="u"}} {pending}\n'
            f"prometheus_remote_storage_highest_timestamp_in_seconds {newest}\n"
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
            f'{{remote_name="r",url="u"}} {sent}\n')

    assert agent_health.queue_drained(metrics(0, 100, 100)) == (True, "pending 0, lag 0 s")
    assert agent_health.queue_drained(metrics(5, 100, 100))[0] is False
    assert agent_health.queue_drained(metrics(0, 100, 80)) == (False, "pending 0, lag 20 s")


@pytest.mark.parametrize("replicas", [0, 11])
def test_replicas_out_of_range_are_refused(replicas: int) -> None:
    from pydantic import ValidationError

    from runbooks.agents.scale_prometheus import ScalePrometheusParams

    with pytest.raises(ValidationError, match="replicas"):
        ScalePrometheusParams(replicas=replicas)


def test_loaded_external_labels_come_from_the_status_config_answer() -> None:
    import json

    body = json.dumps({"status": "success", "data": {"yaml": (
        "global:\n  scrape_interval: 5s\n  external_labels:\n    cluster: observability\n"
        "    replica: prometheus-1\n")}})
    assert ha.loaded_external_labels(body) == {"cluster": "observability",
                                               "replica": "prometheus-1"}
    no_labels = json.dumps({"data": {"yaml": "global:\n  scrape_interval: 5s\n"}})
    assert ha.loaded_external_labels(no_labels) == {}
