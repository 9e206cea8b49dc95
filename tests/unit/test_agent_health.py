"""Table tests of the agent judgement (plugins/module_utils/agent_health.py) and of the
agent runbooks' refusal of a bad wk_agent_log_path."""

from __future__ import annotations

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_health, promtext

from runbooks.gates import log_path_problem
from runbooks.inventory import ClusterConfig

Q = 'remote_name="thanos-receive",url="http://r:19291/api/v1/receive"'


def agent(highest: float, sent: float, start: float = 100.0, wal: str = "",
          failed_writes: float = 0, series: float = 5) -> dict:
    text = "\n".join([
        f"prometheus_remote_storage_highest_timestamp_in_seconds {highest}",
        f"prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{Q}}} {sent}",
        f"prometheus_remote_storage_samples_total{{{Q}}} 10",
        f"process_start_time_seconds {start}",
        f"prometheus_tsdb_wal_writes_failed_total {failed_writes}",
        f"prometheus_agent_active_series {series}",
        "prometheus_agent_data_replay_duration_seconds 0.25",
        wal,
    ]) + "\n"
    return promtext.parse(text, agent_health.METRICS)


@pytest.mark.parametrize(("highest", "sent", "done", "words"), [
    (1000, 995, True, "lag 5 s"),
    (1000, 600, False, "lag 400 s > 120 s"),
    (1000, 0, False, "sent nothing since the restart"),    # a queue that never sent
    (1000, 450, False, "sent nothing since the restart"),  # sent, but before the restart
])
def test_caught_up(highest: float, sent: float, done: bool, words: str) -> None:
    ok, detail = agent_health.caught_up(agent(highest, sent), 500.0, 120.0)
    assert ok is done and words in detail


def test_wal_from_the_metric_wins_and_growth_is_per_second() -> None:
    first = agent(1, 1, wal="prometheus_tsdb_wal_storage_size_bytes 1000")
    second = agent(1, 1, wal="prometheus_tsdb_wal_storage_size_bytes 6000")
    check = agent_health.evaluate_wal(first, second, 5.0, (1, 2, "/disk"))
    assert check["status"] == "ok"
    assert "5.9 KiB (prometheus_tsdb_wal_storage_size_bytes)" in check["evidence"]
    assert "growth 1000 B/s" in check["evidence"]


@pytest.mark.parametrize(("sizes", "failed", "limit", "status"), [
    ((100, 200, "/pv/wal"), 0, 1000, "ok"),
    ((100, 2000, "/pv/wal"), 0, 1000, "warn"),
    ((100, 200, "/pv/wal"), 3, 1000, "fail"),
    (None, 0, 1000, "ok"),
])
def test_wal_check(sizes: tuple | None, failed: float, limit: int, status: str) -> None:
    check = agent_health.evaluate_wal(agent(1, 1), agent(1, 1, failed_writes=failed), 5.0,
                                      sizes, limit)
    assert check["status"] == status
    if sizes is None:
        assert "size unknown" in check["evidence"]


def test_replay_check_needs_a_new_process() -> None:
    before = agent(1, 1, start=100)
    assert agent_health.replay_check(before, agent(1, 1, start=100), "")["status"] == "fail"
    check = agent_health.replay_check(before, agent(1, 1, start=200, series=7), "WAL replay")
    assert check["status"] == "ok"
    assert "0.250 s" in check["evidence"] and "7 active series (5 before)" in check["evidence"]


@pytest.mark.parametrize(("path", "problem"), [
    ("", None),
    ("/var/log/pods/{namespace}_{pod}.log", None),
    ("logs/{pod}.log", "is not absolute"),
    ("/var/log/{container}.log", "only {namespace} and {pod}"),
    ("/var/log/{pod.log", "does not parse"),
])
def test_agent_log_path_is_refused_naming_the_field(path: str, problem: str | None) -> None:
    cluster = ClusterConfig(name="c1", agent_log_path=path)
    found = log_path_problem(cluster)
    if problem is None:
        assert found is None
    else:
        assert found is not None and "wk_agent_log_path" in found and problem in found
