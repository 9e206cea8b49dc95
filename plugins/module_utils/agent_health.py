# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure judgement of a Prometheus Agent: its WAL (size, growth) and, after a restart, whether
the WAL was replayed and remote write caught up. The remote-write queue itself is judged by
remote_write.py (the same checks `status` gives).

Why a restart does not resend what was pending: the remote-write WAL watcher starts reading at
the time it starts and sends only samples newer than that (Prometheus tsdb/wlog/watcher.go),
so samples the agent had not delivered before a restart are not sent afterwards. A restart
fixes a broken remote-write config going forward; it does not recover the gap.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import (
    maximum,
    total,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    AGENT_METRICS,
    HIGHEST,
    SENT_TS,
    check,
    queues,
)

WAL_SIZE = "prometheus_tsdb_wal_storage_size_bytes"  # exported by newer Prometheus only
WAL_SEGMENT = "prometheus_tsdb_wal_segment_current"
WAL_WRITES_FAILED = "prometheus_tsdb_wal_writes_failed_total"
WAL_CORRUPTIONS = "prometheus_agent_corruptions_total"
REPLAY_SECONDS = "prometheus_agent_data_replay_duration_seconds"
ACTIVE_SERIES = "prometheus_agent_active_series"
APPENDED = "prometheus_agent_samples_appended_total"
START_TIME = "process_start_time_seconds"
METRICS = (*AGENT_METRICS, WAL_SIZE, WAL_SEGMENT, WAL_WRITES_FAILED, WAL_CORRUPTIONS,
           REPLAY_SECONDS, ACTIVE_SERIES, APPENDED, START_TIME)

#: A WAL above this is worth a look (default of the wal_max_bytes option).
DEFAULT_WAL_MAX_BYTES = 4 * 1024 ** 3


def human_bytes(value):
    if value is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return "%.1f %s" % (value, unit) if unit != "B" else "%d B" % value
        value /= 1024.0
    return "%.1f GiB" % value


def evaluate_wal(first, second, elapsed, sizes, max_bytes=DEFAULT_WAL_MAX_BYTES):
    """One check for the agent's WAL.

    `first`/`second`: parsed /metrics; `sizes`: (bytes before, bytes after, source) measured
    on disk, or None when the data directory is not readable from here (the metric
    prometheus_tsdb_wal_storage_size_bytes wins when the agent exports it).
    Fails on WAL write failures or corruptions, warns above `max_bytes`.
    """
    before = maximum(first, WAL_SIZE)
    after = maximum(second, WAL_SIZE)
    source = "prometheus_tsdb_wal_storage_size_bytes"
    if after is None and sizes is not None:
        before, after, source = sizes
    growth = None
    if before is not None and after is not None and elapsed > 0:
        growth = (after - before) / elapsed
    appended = None
    a0, a1 = total(first, APPENDED), total(second, APPENDED)
    if a0 is not None and a1 is not None and elapsed > 0:
        appended = (a1 - a0 if a1 >= a0 else a1) / elapsed
    segment = maximum(second, WAL_SEGMENT)
    parts = []
    if after is not None:
        parts.append("size %s (%s)" % (human_bytes(after), source))
    else:
        parts.append("size unknown (the agent exports no %s and its data directory is not"
                     " readable here)" % WAL_SIZE)
    if growth is not None:
        parts.append("growth %s/s" % human_bytes(growth))
    if segment is not None:
        parts.append("current segment %d" % segment)
    if appended is not None:
        parts.append("appending %.1f samples/s" % appended)
    series = maximum(second, ACTIVE_SERIES)
    if series is not None:
        parts.append("%d active series" % series)
    evidence = ", ".join(parts)
    failed_writes = maximum(second, WAL_WRITES_FAILED) or 0
    corruptions = maximum(second, WAL_CORRUPTIONS) or 0
    if failed_writes or corruptions:
        return check("agent WAL", "fail", "%d failed WAL writes, %d corruptions -- %s"
                     % (failed_writes, corruptions, evidence),
                     "the WAL disk is full or failing: check the volume; a corrupt WAL is"
                     " repaired on restart, losing the corrupt segment")
    if after is not None and after > max_bytes:
        return check("agent WAL", "warn", "above %s -- %s" % (human_bytes(max_bytes), evidence),
                     "a WAL that grows holds unsent samples: check remote-write lag below;"
                     " it is truncated only past what every queue has sent")
    return check("agent WAL", "ok", evidence)


def queue_positions(samples):
    """{(remote_name, url): (lag seconds | None, highest sent timestamp)} of an agent."""
    highest = total(samples, HIGHEST)
    out = {}
    for remote_name, url in queues(samples):
        sent = total(samples, SENT_TS, remote_name=remote_name, url=url) or 0.0
        lag = max(0.0, highest - sent) if highest is not None and sent > 0 else None
        out[(remote_name, url)] = (lag, sent)
    return out


def queue_drained(samples, slack=1.0):
    """(done, detail): the remote-write queues hold nothing (no pending samples) and have sent
    up to the newest sample ingested (within `slack` seconds): removing the Prometheus now
    drops nothing it scraped."""
    pending = total(samples, "prometheus_remote_storage_samples_pending") or 0
    newest = maximum(samples, HIGHEST)
    sent = maximum(samples, SENT_TS)
    lag = None if newest is None or sent is None else max(0.0, newest - sent)
    done = pending == 0 and lag is not None and lag <= slack
    return done, "pending %d, lag %s" % (pending, "?" if lag is None else "%.0f s" % lag)


def caught_up(samples, restarted_at, lag_threshold):
    """(done, detail): every queue has sent a sample newer than the restart and its lag is
    at most `lag_threshold` seconds."""
    positions = queue_positions(samples)
    if not positions:
        return False, "the agent reports no remote-write queue"
    behind = []
    for (remote_name, url), (lag, sent) in sorted(positions.items()):
        label = remote_name or url
        if sent <= restarted_at:
            behind.append("%s has sent nothing since the restart" % label)
        elif lag is None or lag > lag_threshold:
            behind.append("%s lag %s s > %.0f s" % (label, "n/a" if lag is None else
                                                    "%.0f" % lag, lag_threshold))
    if behind:
        return False, "; ".join(behind)
    return True, ", ".join("%s lag %.0f s" % (r or u, lag or 0.0)
                           for (r, u), (lag, _) in sorted(positions.items()))


def replay_check(before, after, log_summary):
    """The WAL replay of a restarted agent: a new process (process_start_time_seconds moved),
    ready, with its replay duration and series count, and the log's replay lines."""
    started_before = maximum(before, START_TIME) if before else None
    started_after = maximum(after, START_TIME)
    if started_after is None or (started_before is not None
                                 and started_after <= started_before):
        return check("WAL replayed", "fail",
                     "process_start_time_seconds did not move (%s -> %s): the agent was not"
                     " restarted" % (started_before, started_after),
                     "check that the pod was deleted and recreated")
    seconds = maximum(after, REPLAY_SECONDS)
    series = maximum(after, ACTIVE_SERIES)
    series_before = maximum(before, ACTIVE_SERIES) if before else None
    evidence = "new process started at %.0f; WAL replayed in %s, %s active series (%s before)" % (
        started_after, "%.3f s" % seconds if seconds is not None else "n/a",
        "%d" % series if series is not None else "n/a",
        "%d" % series_before if series_before is not None else "n/a")
    if log_summary:
        evidence += "; log: " + log_summary
    return check("WAL replayed", "ok", evidence)
