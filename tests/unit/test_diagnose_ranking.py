"""Table tests of the diagnostics' pure ranking (plugins/module_utils/diagnose.py)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import diagnose

RIGHT = "http://receiver:19291/api/v1/receive"
WRONG = "http://receiver:19299/api/v1/receive"


def evidence(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ready": True, "ready_detail": "", "inventory_url": RIGHT, "configmap_urls": [RIGHT],
        "loaded_urls": [RIGHT], "probes": {RIGHT: {"error": "", "status": 405}},
        "queues": [{"remote_name": "q", "url": RIGHT, "lag_seconds": 1.0, "never_sent": False,
                    "pending": 0, "dropped_per_second": 0, "failed_per_second": 0,
                    "shards": 1, "shards_max": 200, "shards_desired": 1}],
        "log_classes": {}, "log_source": "log"}
    base.update(overrides)
    return base


def queue(**overrides: Any) -> dict[str, Any]:
    return {**evidence()["queues"][0], **overrides}


@pytest.mark.parametrize(("case", "ev", "first", "remedies"), [
    ("healthy", evidence(), None, []),
    ("agent down explains everything", evidence(
        ready=False, ready_detail="connection refused",
        queues=[queue(never_sent=True)]), "agent not Ready", []),
    ("wrong url refused", evidence(
        configmap_urls=[WRONG], loaded_urls=[WRONG],
        probes={WRONG: {"error": "connection refused", "status": 0},
                RIGHT: {"error": "", "status": 405}},
        queues=[queue(url=WRONG, never_sent=True)],
        log_classes={"connection_refused": {"count": 3, "example": "x"}}),
     "wrong remote-write URL", ["repoint"]),
    ("configmap fixed, not loaded", evidence(
        configmap_urls=[RIGHT], loaded_urls=[WRONG],
        probes={WRONG: {"error": "connection refused", "status": 0},
                RIGHT: {"error": "", "status": 405}}),
     "wrong remote-write URL", ["repoint", "restart"]),
    ("receivers down at the right url", evidence(
        probes={RIGHT: {"error": "connection refused", "status": 0}},
        queues=[queue(lag_seconds=500.0)]), f"endpoint {RIGHT}", []),
    ("4xx wrong path", evidence(probes={RIGHT: {"error": "HTTP 404 Not Found", "status": 404}}),
     f"endpoint {RIGHT}", []),
    ("stuck queue with a healthy endpoint", evidence(queues=[queue(lag_seconds=500.0)]),
     "queue q stuck", ["restart"]),
    ("shards at max only", evidence(queues=[queue(shards=200)]), "queue q shards at max", []),
])
def test_remote_write_ranking(case: str, ev: dict[str, Any], first: str | None,
                              remedies: list[str]) -> None:
    findings = diagnose.remote_write_findings(ev, 120.0)
    top = diagnose.most_likely(findings)
    assert (top["name"] if top else None) == first, (case, findings)
    assert diagnose.remedies(findings) == remedies, case
    if first is None:
        assert diagnose.summary(findings).startswith("most likely: nothing wrong")
    else:
        assert diagnose.summary(findings).startswith(f"most likely: {first}: ")


def test_a_working_url_other_than_the_inventorys_is_reported_not_repointed() -> None:
    other = "http://other:19291/api/v1/receive"
    findings = diagnose.remote_write_findings(evidence(
        configmap_urls=[other], loaded_urls=[other],
        probes={other: {"error": "", "status": 405}, RIGHT: {"error": "", "status": 405}}), 120)
    top = diagnose.most_likely(findings)
    assert top is not None and top["name"] == "wrong remote-write URL"
    assert top["status"] == "warn" and diagnose.remedies(findings) == []


def test_a_configmap_pointing_away_while_the_agent_runs_right_is_not_restarted() -> None:
    findings = diagnose.remote_write_findings(evidence(configmap_urls=[WRONG]), 120)
    assert diagnose.remedies(findings) == ["repoint"]  # a restart alone would break it


@pytest.mark.parametrize(("error", "status", "cause"), [
    ("connection refused", 0, "connection_refused"),
    ("DNS lookup failed (Name or service not known)", 0, "dns"),
    ("TLS certificate not trusted (x)", 0, "tls"),
    ("timed out", 0, "timeout"),
    ("HTTP 404 Not Found", 404, "http_4xx"),
    ("", 405, ""),
    ("HTTP 503 Service Unavailable", 503, "http_5xx"),
    ("no route to host", 0, "unreachable"),
    ("", 0, ""),
])
def test_endpoint_cause(error: str, status: int, cause: str) -> None:
    assert diagnose.endpoint_cause(error, status) == cause


NOW = 1_800_000_000.0


@pytest.mark.parametrize(("newest", "up_now", "last_up", "cause", "text"), [
    (NOW - 5, 1.0, NOW - 5, "job_ok", "up = 1"),
    (NOW - 5, 0.0, NOW - 300, "target_down", "scrape target down since 2027-01-15"),
    (NOW - 5, 0.0, None, "target_down", "for the whole look-back"),
    (NOW - 600, None, NOW - 600, "not_delivered", "missing since 2027-01-15T07:50:00Z"),
    (None, None, None, "never_seen", "no sample"),
])
def test_job_findings(newest: float | None, up_now: float | None, last_up: float | None,
                      cause: str, text: str) -> None:
    item = diagnose.job_findings("c1", "canary", NOW, newest, up_now, last_up, 120.0)
    assert item["cause"] == cause and text in item["evidence"], item
    assert (item["status"] == "ok") == (cause == "job_ok")


def test_an_undelivering_agent_outranks_a_down_target() -> None:
    down = diagnose.job_findings("c1", "canary", NOW, NOW - 5, 0.0, NOW - 60, 120.0)
    stale = diagnose.job_findings("c1", "agent", NOW, NOW - 600, None, NOW - 600, 120.0)
    assert diagnose.rank([down, stale])[0] is stale
    assert diagnose.remedies([down, stale]) == ["remote_write"]


def test_matrix_text_aligns_rows_and_says_ok() -> None:
    text = diagnose.matrix_text([("agent c1", "remote-write http://a", ""),
                                 ("query", "gRPC b:10901", "connection refused")])
    lines = text.splitlines()
    assert lines[0].endswith("ok") and lines[1].endswith("connection refused")
    assert lines[0].index("->") == lines[1].index("->")


@pytest.mark.parametrize(("age", "status"), [(30.0, "fail"), (900.0, "ok")])
def test_refused_lines_from_a_past_receiver_restart_do_not_fail_a_healthy_agent(
        age: float, status: str) -> None:
    """A receiver rollout leaves "connection refused" lines in every agent's log; once the
    queues are healthy again, old lines are the past (ok, with their age); recent ones are a
    problem the probes may not have caught yet."""
    now = 1_000_000.0
    findings = diagnose.remote_write_findings(evidence(log_classes={"connection_refused": {
        "count": 1, "example": "dial tcp: connection refused", "last": now - age}}), 120.0,
        now=now)
    log = next(f for f in findings if f["name"] == "log: connection_refused")
    assert log["status"] == status, findings
    if status == "ok":
        assert log["evidence"].startswith("past: the newest 900 s ago") and not log["hint"]
        assert diagnose.summary(findings).startswith("most likely: nothing wrong")


def test_refused_lines_are_not_the_past_while_a_probe_fails() -> None:
    now = 1_000_000.0
    findings = diagnose.remote_write_findings(evidence(
        probes={RIGHT: {"error": "connection refused", "status": 0}},
        queues=[queue(lag_seconds=500.0)],
        log_classes={"connection_refused": {"count": 1, "example": "x", "last": now - 900}}),
        120.0, now=now)
    log = next(f for f in findings if f["name"] == "log: connection_refused")
    assert log["status"] == "warn"  # the probe's finding ranks first; the log supports it


def test_an_agent_that_cannot_reach_a_receiver_that_answers_here_is_not_restarted() -> None:
    """The receiver answers watchkeeper's probe, but the agent's own log says it has no route
    to it (a dropped route or a policy between them): the lag is explained by that, and no
    restart is proposed (it would not help)."""
    now = 1_000_000.0
    ev = evidence(queues=[queue(lag_seconds=300.0)], log_classes={
        "unreachable": {"count": 7, "example": "dial tcp: connect: no route to host",
                        "last": now - 5}})
    findings = diagnose.remote_write_findings(ev, 120.0, now=now)
    top = diagnose.most_likely(findings)
    assert top is not None and top["name"] == "log: unreachable", findings
    lag = next(f for f in findings if f["name"] == "queue q behind")
    assert "agent's own errors (unreachable)" in lag["evidence"]
    assert diagnose.remedies(findings) == []
    # The same lag without the agent's errors is a stuck queue a restart may clear.
    plain = diagnose.remote_write_findings(evidence(queues=[queue(lag_seconds=300.0)]), 120.0)
    assert diagnose.remedies(plain) == ["restart"]


def test_slow_requests_are_named_even_while_the_queue_keeps_up() -> None:
    findings = diagnose.remote_write_findings(
        evidence(queues=[queue(send_seconds=4.2, sends=9)]), 120.0, send_threshold=1.0)
    top = diagnose.most_likely(findings)
    assert top is not None and top["name"] == "queue q slow" and top["status"] == "warn"
    assert "4.2 s" in top["evidence"] and "9 over the window" in top["evidence"]
    fast = diagnose.remote_write_findings(
        evidence(queues=[queue(send_seconds=0.01, sends=9)]), 120.0, send_threshold=1.0)
    assert diagnose.most_likely(fast) is None
