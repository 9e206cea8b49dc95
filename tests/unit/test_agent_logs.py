"""Table tests of the Prometheus Agent log classifier (plugins/module_utils/agent_logs.py).

The lines are real: Debian's Prometheus 2.42 in agent mode remote-writing to endpoints that
answer 400, 503, 409 (out of order, out of bounds), to a closed port and to a name that does
not resolve, as captured from its log.
"""

from __future__ import annotations

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import agent_logs

OOO = ('ts=2026-11-24T19:02:51.680Z caller=dedupe.go:112 component=remote level=error'
       ' remote_name=r409ooo url=http://127.0.0.1:18403/api/v1/receive msg="non-recoverable'
       ' error" count=444 exemplarCount=0 err="server returned HTTP status 409 Conflict: add 3'
       ' samples: out of order sample"')
OOB = ('ts=2026-11-24T19:02:51.681Z caller=dedupe.go:112 component=remote level=error'
       ' remote_name=r409oob url=http://127.0.0.1:18404/api/v1/receive msg="non-recoverable'
       ' error" count=444 exemplarCount=0 err="server returned HTTP status 409 Conflict: store'
       ' locally for endpoint 10.0.0.1:10901: add 2 samples: out of bounds"')
BAD_REQUEST = ('ts=2026-11-24T19:02:51.681Z caller=dedupe.go:112 component=remote level=error'
               ' remote_name=r400 url=http://127.0.0.1:18401/api/v1/receive'
               ' msg="non-recoverable error" count=444 exemplarCount=0 err="server returned'
               ' HTTP status 400 Bad Request: bad request: invalid label"')
REFUSED = ('ts=2026-11-24T19:02:51.709Z caller=dedupe.go:112 component=remote level=warn'
           ' remote_name=refused url=http://127.0.0.1:18405/api/v1/receive msg="Failed to send'
           ' batch, retrying" err="Post \\"http://127.0.0.1:18405/api/v1/receive\\": dial tcp'
           ' 127.0.0.1:18405: connect: connection refused"')
DNS = ('ts=2026-11-24T19:02:51.712Z caller=dedupe.go:112 component=remote level=warn'
       ' remote_name=dns url=http://no-such-receiver.invalid:19291/api/v1/receive msg="Failed'
       ' to send batch, retrying" err="Post \\"http://no-such-receiver.invalid:19291/api/v1/'
       'receive\\": dial tcp: lookup no-such-receiver.invalid on 10.255.255.53:53: no such host"')
UNAVAILABLE = ('ts=2026-11-24T19:02:51.712Z caller=dedupe.go:112 component=remote level=warn'
               ' remote_name=r503 url=http://127.0.0.1:18402/api/v1/receive msg="Failed to send'
               ' batch, retrying" err="server returned HTTP status 503 Service Unavailable:'
               ' unavailable"')
SIGTERM = ('ts=2026-11-24T19:03:10.590Z caller=main.go:823 level=warn msg="Received SIGTERM,'
           ' exiting gracefully..."')
CANCELED = ('ts=2026-11-24T19:12:19.510Z caller=dedupe.go:112 component=remote level=error'
            ' remote_name=thanos-receive url=http://198.18.89.11:19299/api/v1/receive'
            ' msg="non-recoverable error" count=500 exemplarCount=0 err="context canceled"')
UNFLUSHED = ('ts=2026-11-24T19:12:19.510Z caller=dedupe.go:112 component=remote level=error'
             ' remote_name=thanos-receive url=http://198.18.89.11:19299/api/v1/receive'
             ' msg="Failed to flush all samples on shutdown" count=1532')
INFO = ('ts=2026-11-24T19:02:45.670Z caller=db.go:344 level=info msg="replaying WAL, this may'
        ' take a while" dir=data/wal')
STARTING = ('ts=2026-11-24T19:02:45.654Z caller=main.go:551 level=info msg="Starting'
            ' Prometheus Agent" mode=agent version="(version=2.42.0+ds, branch=debian/sid,'
            ' revision=2.42.0+ds-5+deb12u1)"')
DONE = ('ts=2026-11-24T19:01:10.508Z caller=dedupe.go:112 component=remote level=info'
        ' remote_name=thanos-receive url=http://198.18.89.11:19291/api/v1/receive msg="Done'
        ' replaying WAL" duration=6.060995752s')


@pytest.mark.parametrize(("line", "expected"), [
    (OOO, "out_of_order"),
    (OOB, "out_of_bounds"),
    (BAD_REQUEST, "http_4xx_dropped"),
    (REFUSED, "connection_refused"),
    (DNS, "dns"),
    (UNAVAILABLE, "http_5xx_retried"),
    (SIGTERM, None),  # an orderly restart is not an error
    (CANCELED, "unsent_at_shutdown"),  # a restart while the queue could not deliver
    (UNFLUSHED, "unsent_at_shutdown"),
    (INFO, None),
    ('ts=2026-11-24T19:02:51Z level=warn msg="Failed to send batch, retrying" err="Post'
     ' \\"http://x/api/v1/receive\\": context deadline exceeded"', "timeout"),
    ('ts=2026-11-24T19:02:51Z level=error msg="Error loading config" err="yaml"', "other_error"),
])
def test_each_real_line_gets_its_class(line: str, expected: str | None) -> None:
    assert agent_logs.classify(line) == expected


def test_line_time_reads_the_logfmt_timestamp() -> None:
    assert agent_logs.line_time(OOO) == pytest.approx(1795546971.680)
    assert agent_logs.line_time("no timestamp here") is None


def test_summary_counts_per_class_keeps_the_newest_example_and_the_queue() -> None:
    lines = [REFUSED, REFUSED.replace("51.709", "52.709"), BAD_REQUEST, INFO, UNAVAILABLE]
    summary = agent_logs.summarize(lines)
    classes = summary["classes"]
    assert summary["lines"] == 5
    assert classes["connection_refused"]["count"] == 2
    assert "52.709" in classes["connection_refused"]["example"]
    assert classes["connection_refused"]["remote_names"] == ["refused"]
    assert classes["http_4xx_dropped"]["lost"] is True
    assert classes["http_5xx_retried"]["lost"] is False
    assert set(classes) == {"connection_refused", "http_4xx_dropped", "http_5xx_retried"}


def test_summary_window_drops_older_lines() -> None:
    since = agent_logs.line_time(REFUSED)
    summary = agent_logs.summarize([OOO, OOB, REFUSED, DNS], since=since)
    assert set(summary["classes"]) == {"connection_refused", "dns"}
    assert summary["lines"] == 2


@pytest.mark.parametrize(("lines", "status"), [
    ([INFO], "ok"),
    ([UNAVAILABLE], "warn"),  # retried: the WAL keeps the samples
    ([UNAVAILABLE, REFUSED], "fail"),
    ([OOB], "fail"),  # dropped
    ([BAD_REQUEST], "fail"),
])
def test_check_fails_on_loss_or_no_delivery_and_warns_on_retries(
    lines: list[str], status: str
) -> None:
    check = agent_logs.check_of(agent_logs.summarize(lines), "agent.log", 600)
    assert check["status"] == status
    if status != "ok":
        assert "e.g. ts=" in check["evidence"] and check["hint"]


def test_replay_summary_names_the_queues_that_finished_replaying() -> None:
    assert agent_logs.replay_summary([SIGTERM]) == ""
    text = agent_logs.replay_summary([INFO, DONE])
    assert text.startswith("WAL replay started")
    assert "thanos-receive in 6.060995752s" in text


def test_samples_given_up_are_summed_and_until_bounds_the_window() -> None:
    lines = [REFUSED, DNS, CANCELED, UNFLUSHED]
    shutdown = agent_logs.line_time(CANCELED)
    summary = agent_logs.summarize(lines, since=shutdown)
    assert set(summary["classes"]) == {"unsent_at_shutdown"}
    assert summary["classes"]["unsent_at_shutdown"]["samples"] == 2032
    check = agent_logs.check_of(summary, "agent.log", 60)
    assert check["status"] == "fail" and "unsent_at_shutdown x2, 2032 samples" in check["evidence"]
    before = agent_logs.summarize(lines, since=0, until=shutdown)
    assert set(before["classes"]) == {"connection_refused", "dns"}


def test_process_started_is_the_last_start_line_in_the_window() -> None:
    lines = [STARTING, REFUSED, STARTING.replace("19:02:45.654", "19:03:00.000"), INFO]
    assert agent_logs.process_started(lines) == agent_logs.line_time(lines[2])
    assert agent_logs.process_started(lines, since=agent_logs.line_time(lines[2]) + 1) is None
