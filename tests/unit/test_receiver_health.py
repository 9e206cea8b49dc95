"""Table tests of the receiver-health judgement (plugins/module_utils/receiver_health.py):
write quorum and the failures a ring tolerates, ring membership, error ratios, uploads."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import promtext
from ansible_collections.watchkeeper.platform.plugins.module_utils import receiver_health as rh


@pytest.mark.parametrize(("rf", "version", "quorum"), [
    (1, "0.40.1", 1),
    (2, "0.40.1", 1),   # RF 2 needs one replica since v0.37
    (2, "0.37.0", 1),
    (2, "0.36.1", 2),   # ... and both before
    (2, None, 1),       # unknown version: taken as current
    (3, "0.40.1", 2),
    (4, "0.40.1", 3),
    (5, "0.40.1", 3),
])
def test_write_quorum(rf: int, version: str | None, quorum: int) -> None:
    assert rh.write_quorum(rf, version)[0] == quorum


@pytest.mark.parametrize(("size", "rf", "version", "down", "tolerated", "remaining"), [
    (3, 2, "0.40.1", 0, 1, 1),
    (3, 2, "0.40.1", 1, 1, 0),
    (3, 2, "0.40.1", 2, 1, -1),
    (3, 2, "0.36.0", 0, 0, 0),   # RF 2 before v0.37: every write needs both replicas
    (6, 3, "0.40.1", 0, 1, 1),   # ring size does not raise what a series' replicas tolerate
    (5, 5, "0.40.1", 1, 2, 1),
    (3, 1, "0.40.1", 0, 0, 0),
    (1, 2, "0.40.1", 0, -1, -1),  # fewer endpoints than RF: nothing can be placed
])
def test_quorum_tolerance(size: int, rf: int, version: str, down: int, tolerated: int,
                          remaining: int) -> None:
    q = rh.quorum_tolerance(size, rf, down, version)
    assert (q["tolerated"], q["remaining"]) == (tolerated, remaining)
    assert q["sentence"]


def test_quorum_sentence_says_the_number() -> None:
    q = rh.quorum_tolerance(3, 2, 0, "0.40.1")
    assert "1 receiver(s) may fail before writes lose quorum" in q["sentence"]
    assert "1 more may fail" in q["sentence"]
    assert "no further receiver may fail" in rh.quorum_tolerance(3, 2, 1, "0.40.1")["sentence"]


RING = [{"hashring": "tenant-a", "tenants": ["a"], "endpoints": ["r0:10901", "r1:10901"]},
        {"hashring": "default", "endpoints": ["r0:10901", "r1:10901",
                                              {"address": "r2:10901", "az": "x"}]}]


def pods(*ready: bool, extra: int = 0) -> list[dict[str, Any]]:
    out = [{"name": f"thanos-receive-{i}", "endpoint": f"r{i}:10901", "ready": r, "error": ""}
           for i, r in enumerate(ready)]
    return out


def test_membership_finds_pods_outside_and_endpoints_without_a_ready_pod() -> None:
    missing, orphans, down = rh.membership(RING, pods(True, True, True, True))
    assert missing == ["thanos-receive-3"] and orphans == [] and down == {"tenant-a": 0,
                                                                          "default": 0}
    missing, orphans, down = rh.membership(RING, pods(True, False, True))
    assert missing == [] and orphans == ["r1:10901"]
    assert down == {"tenant-a": 1, "default": 1}


def metrics(fwd_ok: float, fwd_err: float, codes: dict[str, float], upload: float = 0,
            start: float = 0) -> dict[str, Any]:
    text = "\n".join([
        f'thanos_receive_forward_requests_total{{result="success"}} {fwd_ok}',
        f'thanos_receive_forward_requests_total{{result="error"}} {fwd_err}',
        'thanos_receive_replications_total{result="success"} 10',
        'thanos_receive_replications_total{result="error"} 0',
        *(f'http_requests_total{{code="{c}",handler="receive",method="post"}} {v}'
          for c, v in codes.items()),
        'http_requests_total{code="200",handler="other",method="get"} 999',
        f'thanos_objstore_bucket_last_successful_upload_time{{bucket="b"}} {upload}',
        f"process_start_time_seconds {start}",
        'thanos_build_info{version="0.40.1"} 1',
        "thanos_receive_replication_factor 2",
    ]) + "\n"
    return promtext.parse(text, rh.METRICS)


def test_error_ratios_are_over_the_window_not_since_start() -> None:
    first = metrics(100, 50, {"200": 100, "503": 0})
    second = metrics(190, 60, {"200": 118, "503": 2})
    ratios = rh.error_ratios(first, second)
    assert ratios["forward"] == (10, 100, 0.1)
    assert ratios["receive_5xx"] == (2, 20, 0.1)
    assert ratios["receive_4xx"][0] == 0
    assert ratios["replication"][2] is None  # no replication in the window


@pytest.mark.parametrize(("fwd_err", "status"), [(0, "ok"), (0.5, "warn"), (10, "fail")])
def test_receiver_check_by_error_ratio(fwd_err: float, status: str) -> None:
    pod = pods(True)[0]
    check = rh.evaluate_receiver(pod, metrics(0, 0, {}), metrics(100, fwd_err, {}), 0.01)
    assert check["status"] == status


@pytest.mark.parametrize(("upload", "start", "status"), [
    (9000.0, 0.0, "ok"),       # 1000 s ago
    (1.0, 0.0, "fail"),        # 9999 s ago, limit 3600
    (0.0, 8000.0, "ok"),       # never yet, but up 2000 s
    (0.0, 1000.0, "fail"),     # never in 9000 s of uptime
])
def test_upload_recency(upload: float, start: float, status: str) -> None:
    check = rh.evaluate_upload(pods(True)[0], metrics(0, 0, {}, upload, start), 10000.0, 3600.0)
    assert check["status"] == status


def test_evaluate_reports_quorum_per_ring_and_the_down_receiver() -> None:
    sample = metrics(10, 0, {"200": 10})
    checks = rh.evaluate(RING, pods(True, True, False), {"thanos-receive-0": (sample, sample),
                                                         "thanos-receive-1": (sample, sample)},
                         2, 10.0, 0.01)
    by_name = {c["name"]: c for c in checks}
    assert by_name["ring membership"]["status"] == "fail"
    assert "r2:10901" in by_name["ring membership"]["evidence"]
    assert by_name["write quorum default"]["status"] == "warn"
    assert by_name["write quorum default"]["quorum"]["remaining"] == 0
    assert by_name["write quorum tenant-a"]["status"] == "ok"
    assert by_name["receiver thanos-receive-2"]["status"] == "fail"


def test_the_receivers_replication_factor_wins_over_the_inventory() -> None:
    sample = metrics(10, 0, {"200": 10})  # reports RF 2
    checks = rh.evaluate(RING[1:], pods(True, True, True),
                         {f"thanos-receive-{i}": (sample, sample) for i in range(3)}, 3, 10.0,
                         0.01)
    quorum = next(c for c in checks if c["name"] == "write quorum default")
    assert quorum["quorum"]["replication_factor"] == 2
    assert quorum["status"] == "warn" and "inventory says 3" in quorum["hint"]
