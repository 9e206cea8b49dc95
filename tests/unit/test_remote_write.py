"""Table tests of the pure remote-write and ingestion evaluation (plugins/module_utils)."""

from __future__ import annotations

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import promtext
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    evaluate_agent,
    evaluate_queue,
    evaluate_receiver,
    queue_stats,
)

Q = 'remote_name="r1",url="http://recv:19291/api/v1/receive"'


def exposition(sent, failed, retried, pending, highest, sent_ts, shards=1, old=False, extra=""):
    names = (
        ("prometheus_remote_storage_succeeded_samples_total",
         "prometheus_remote_storage_failed_samples_total",
         "prometheus_remote_storage_retried_samples_total",
         "prometheus_remote_storage_pending_samples")
        if old else
        ("prometheus_remote_storage_samples_total",
         "prometheus_remote_storage_samples_failed_total",
         "prometheus_remote_storage_samples_retried_total",
         "prometheus_remote_storage_samples_pending")
    )
    return "\n".join([
        f"{names[0]}{{{Q}}} {sent}",
        f"{names[1]}{{{Q}}} {failed}",
        f"{names[2]}{{{Q}}} {retried}",
        f"{names[3]}{{{Q}}} {pending}",
        f"prometheus_remote_storage_highest_timestamp_in_seconds {highest}",
        f"prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{Q}}} {sent_ts}",
        f"prometheus_remote_storage_shards{{{Q}}} {shards}",
        f"prometheus_remote_storage_shards_max{{{Q}}} 50",
        f"prometheus_remote_storage_shards_desired{{{Q}}} {shards}",
        extra,
    ]) + "\n"


def stats(first, second, elapsed=10.0):
    return queue_stats(promtext.parse(first), promtext.parse(second), elapsed, "r1",
                       "http://recv:19291/api/v1/receive")


CASES = [
    # id, first, second, endpoint_error, expected status, expected words
    ("healthy", exposition(1000, 0, 0, 0, 1000, 999), exposition(2000, 0, 0, 5, 1010, 1009),
     "", "ok", ["delivered 100.0/s"]),
    ("old metric names", exposition(1000, 0, 0, 0, 1000, 999, old=True),
     exposition(2000, 0, 0, 5, 1010, 1009, old=True), "", "ok", ["delivered 100.0/s"]),
    ("receiver refuses", exposition(1000, 0, 0, 0, 1000, 999),
     exposition(1500, 0, 500, 900, 1010, 1000), "connection refused", "fail",
     ["connection refused", "every send is being retried"]),
    ("4xx rejects", exposition(1000, 0, 0, 0, 1000, 999), exposition(2000, 200, 0, 0, 1010, 1009),
     "", "fail", ["20.0% of samples rejected"]),
    ("lag over threshold", exposition(1000, 0, 0, 0, 1000, 800),
     exposition(2000, 0, 0, 0, 1010, 805), "", "fail", ["lag 205 s above 120 s"]),
    ("retrying but delivering", exposition(1000, 0, 0, 0, 1000, 999),
     exposition(3000, 0, 100, 0, 1010, 1009), "", "warn", ["retrying 10.0 samples/s"]),
    ("shards at max", exposition(1000, 0, 0, 0, 1000, 999),
     exposition(2000, 0, 0, 0, 1010, 1009, shards=50), "", "warn", ["shards at max (50)"]),
    ("counter reset", exposition(5000, 0, 0, 0, 1000, 999), exposition(400, 0, 0, 0, 1010, 1009),
     "", "ok", ["delivered 40.0/s"]),
]


@pytest.mark.parametrize(("first", "second", "error", "status", "words"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_evaluate_queue(first, second, error, status, words):
    result = evaluate_queue(stats(first, second), {"lag_seconds": 120}, error)
    assert result["status"] == status, result
    for word in words:
        assert word in result["evidence"], result["evidence"]
    if status != "ok":
        assert result["hint"]


def test_thresholds_from_inventory_strings_apply():
    result = evaluate_queue(stats(exposition(1000, 0, 0, 0, 1000, 999),
                                  exposition(2000, 0, 0, 0, 1010, 1000)),
                            {"lag_seconds": "5", "failed_ratio": None})
    assert result["status"] == "fail" and "lag 10 s above 5 s" in result["evidence"]


def endpoint(url, text="", ready=True, detail=""):
    return {"url": url, "ready": ready, "detail": detail, "samples": promtext.parse(text)}


def test_agent_without_remote_write_fails():
    agent = endpoint("http://agent:9090", "up 1\n")
    checks = evaluate_agent(agent, agent, 5.0, {})
    assert [c["status"] for c in checks] == ["ok", "fail"]
    assert "no remote-write queue" in checks[1]["evidence"]


def test_agent_down_names_the_reason():
    agent = endpoint("http://agent:9090", ready=False, detail="DNS lookup failed (nodename)")
    checks = evaluate_agent(agent, agent, 5.0, {})
    assert checks[0]["status"] == "fail" and "DNS lookup failed" in checks[0]["evidence"]


@pytest.mark.parametrize(("before", "after", "now", "status"), [
    (100, 600, 1005, "ok"),        # 100 samples/s, newest sample 5 s old
    (100, 100, 2000, "fail"),      # nothing new for 1000 s
])
def test_evaluate_receiver(before, after, now, status):
    head = "prometheus_tsdb_head_max_time_seconds 1000\n"
    appended = "prometheus_tsdb_head_samples_appended_total %d\n"
    first = endpoint("http://r:10902", appended % before + head)
    second = endpoint("http://r:10902", appended % after + head)
    checks = evaluate_receiver(first, second, 5.0, now, {})
    assert checks[-1]["status"] == status, checks


def test_parse_rejects_garbage():
    with pytest.raises(ValueError):
        promtext.parse("this is { not metrics\n")


def test_receiver_age_from_thanos_per_tenant_milliseconds():
    text = ('prometheus_tsdb_head_samples_appended_total{tenant="a",type="float"} %d\n'
            'prometheus_tsdb_head_max_time{tenant="a"} 990000\n'
            'prometheus_tsdb_head_max_time{tenant="b"} 1000000\n')
    first = endpoint("http://r:10902", text % 100)
    second = endpoint("http://r:10902", text % 600)
    checks = evaluate_receiver(first, second, 5.0, 1003, {})
    assert checks[-1]["status"] == "ok"
    assert "newest sample 3 s old" in checks[-1]["evidence"]  # the newest tenant counts
