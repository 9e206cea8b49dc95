# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure evaluation of remote write (agent side) and ingestion (receiver side).

Input is two samples of each endpoint taken `elapsed` seconds apart (the output of the
remote_write_sample module); output is a list of checks {name, status, evidence, hint}.
Metric names changed across Prometheus versions; every lookup accepts the old and new name.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import (
    first_present,
    maximum,
    total,
)

SENT = ("prometheus_remote_storage_samples_total",
        "prometheus_remote_storage_succeeded_samples_total")
FAILED = ("prometheus_remote_storage_samples_failed_total",
          "prometheus_remote_storage_failed_samples_total")
RETRIED = ("prometheus_remote_storage_samples_retried_total",
           "prometheus_remote_storage_retried_samples_total")
DROPPED = ("prometheus_remote_storage_samples_dropped_total",
           "prometheus_remote_storage_dropped_samples_total")
PENDING = ("prometheus_remote_storage_samples_pending",
           "prometheus_remote_storage_pending_samples")
HIGHEST = "prometheus_remote_storage_highest_timestamp_in_seconds"
SENT_TS = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
SHARDS = "prometheus_remote_storage_shards"
SHARDS_DESIRED = "prometheus_remote_storage_shards_desired"
SHARDS_MAX = "prometheus_remote_storage_shards_max"
#: Seconds each remote-write request took (a histogram; its _sum and _count per queue).
SEND_DURATION = "prometheus_remote_storage_sent_batch_duration_seconds"
AGENT_METRICS = SENT + FAILED + RETRIED + DROPPED + PENDING + (
    HIGHEST, SENT_TS, SHARDS, SHARDS_DESIRED, SHARDS_MAX, SEND_DURATION + "_sum",
    SEND_DURATION + "_count")

# Prometheus (and Thanos Receive's per-tenant TSDBs) count appended samples in the head;
# the write-path histogram is the fallback where head metrics are not exported.
APPENDED = ("prometheus_tsdb_head_samples_appended_total", "thanos_receive_write_samples_sum")
# Prometheus exports the head's newest timestamp in seconds and in milliseconds; Thanos Receive
# only in milliseconds, one series per tenant.
HEAD_MAX_TIME = "prometheus_tsdb_head_max_time_seconds"
HEAD_MAX_TIME_MS = "prometheus_tsdb_head_max_time"
RECEIVER_METRICS = (*APPENDED, HEAD_MAX_TIME, HEAD_MAX_TIME_MS, "prometheus_tsdb_head_series")

DEFAULTS = {
    "lag_seconds": 120.0,
    "failed_ratio": 0.01,
    "pending_samples": 100000,
    "stale_ingest_seconds": 300.0,
}


def thresholds_with_defaults(thresholds):
    """DEFAULTS overridden by the given thresholds; None or empty means "use the default"."""
    merged = dict(DEFAULTS)
    for key, value in (thresholds or {}).items():
        if value is not None and value != "":
            merged[key] = float(value)
    return merged


def queues(samples):
    """The remote-write queues an agent reports: [(remote_name, url)]."""
    found = set()
    for name in (SENT_TS, *SENT):
        for labels, _ in samples.get(name, []):
            found.add((labels.get("remote_name", ""), labels.get("url", "")))
    return sorted(found)


def _delta(first, second, name, **match):
    """How much counter `name` grew between the samples (None when absent)."""
    before, after = total(first, name, **match), total(second, name, **match)
    if before is None or after is None:
        return None
    # A counter that went down means the process restarted; count from zero.
    return after - before if after >= before else after


def _rate(first, second, names, elapsed, **match):
    name = first_present(second, *names)
    if name is None or elapsed <= 0:
        return None
    delta = _delta(first, second, name, **match)
    return None if delta is None else delta / elapsed


def queue_stats(first, second, elapsed, remote_name, url):
    """Rates and gauges of one queue between the two samples."""
    match = {"remote_name": remote_name, "url": url}
    highest = total(second, HIGHEST)
    sent_ts = total(second, SENT_TS, **match)
    lag = None
    if highest is not None and sent_ts is not None:
        lag = max(0.0, highest - sent_ts) if sent_ts > 0 else None
    pending_name = first_present(second, *PENDING)
    sends = _delta(first, second, SEND_DURATION + "_count", **match)
    spent = _delta(first, second, SEND_DURATION + "_sum", **match)
    return {
        "remote_name": remote_name,
        "url": url,
        "sent_per_second": _rate(first, second, SENT, elapsed, **match),
        "failed_per_second": _rate(first, second, FAILED, elapsed, **match),
        "retried_per_second": _rate(first, second, RETRIED, elapsed, **match),
        "dropped_per_second": _rate(first, second, DROPPED, elapsed, **match),
        "pending": total(second, pending_name, **match) if pending_name else None,
        "lag_seconds": lag,
        "never_sent": sent_ts == 0,
        "shards": total(second, SHARDS, **match),
        "shards_desired": total(second, SHARDS_DESIRED, **match),
        "shards_max": total(second, SHARDS_MAX, **match),
        # Mean seconds per request over the window (None: no request finished in it).
        "sends": sends,
        "send_seconds": spent / sends if sends and spent is not None else None,
    }


def _fmt(value, unit="", digits=1):
    if value is None:
        return "n/a"
    return ("%." + str(digits) + "f%s") % (value, unit)


def check(name, status, evidence, hint=""):
    return {"name": name, "status": status, "evidence": evidence, "hint": hint}


def evaluate_queue(stats, thresholds, endpoint_error=""):
    """One check for one remote-write queue."""
    t = thresholds_with_defaults(thresholds)
    # samples_total counts every send attempt, retries included: what got through is the rest.
    attempted = stats["sent_per_second"] or 0.0
    failed = stats["failed_per_second"] or 0.0
    retried = stats["retried_per_second"] or 0.0
    dropped = stats["dropped_per_second"] or 0.0
    sent = max(0.0, attempted - retried - failed)
    ratio = failed / attempted if attempted > 0 else 0.0
    lag = stats["lag_seconds"]
    evidence = (
        "delivered %s/s of %s/s attempted, failed %s/s, retried %s/s, dropped %s/s, pending %s,"
        " lag %s, shards %s/%s (desired %s)" % (
            _fmt(sent), _fmt(attempted), _fmt(failed), _fmt(retried), _fmt(dropped),
            _fmt(stats["pending"], digits=0), _fmt(lag, " s"), _fmt(stats["shards"], digits=0),
            _fmt(stats["shards_max"], digits=0), _fmt(stats["shards_desired"], digits=0)))
    reasons, hints, status = [], [], "ok"
    if endpoint_error:
        reasons.append("remote-write endpoint %s unreachable: %s" % (stats["url"], endpoint_error))
        hints.append("check that the receivers are up and the URL/port in the agent's"
                     " remote_write config is right")
    if failed > 0 and ratio > t["failed_ratio"]:
        reasons.append("%.1f%% of samples rejected (4xx: not retried, data dropped)"
                       % (ratio * 100))
        hints.append("read the receiver's logs for out-of-order / out-of-bounds / limit errors")
    if retried > 0 and sent <= 0:
        reasons.append("every send is being retried and none succeeds")
        hints.append("the receiver answers 5xx or is unreachable; the agent keeps data in its WAL"
                      " (about 2h) while retrying")
    if lag is not None and lag > t["lag_seconds"]:
        reasons.append("lag %.0f s above %.0f s" % (lag, t["lag_seconds"]))
        hints.append("the queue falls behind: check shards vs max and receiver latency")
    if stats["never_sent"]:
        reasons.append("the queue has never sent a sample")
    if reasons:
        status = "fail"
    else:
        warn = []
        if retried > 0:
            warn.append("retrying %s samples/s" % _fmt(retried))
        if dropped > 0:
            warn.append("dropping %s samples/s" % _fmt(dropped))
        pending = stats["pending"] or 0
        if pending > t["pending_samples"]:
            warn.append("%d samples pending" % pending)
        if stats["shards"] is not None and stats["shards_max"] and \
                stats["shards"] >= stats["shards_max"]:
            warn.append("shards at max (%d)" % stats["shards_max"])
        if warn:
            status = "warn"
            reasons = warn
            hints.append("raise queue_config.max_shards or check receiver latency")
    if reasons:
        evidence = "; ".join(reasons) + " -- " + evidence
    label = stats["remote_name"] or stats["url"]
    return check("remote write %s" % label, status, evidence, "; ".join(hints))


def evaluate_agent(first, second, elapsed, thresholds, remote_write_error=""):
    """Checks for a workload cluster's agent: readiness, then one per queue."""
    if first is None or second is None:
        return []
    if not second["ready"]:
        detail = second.get("detail") or "not ready"
        return [check("agent ready", "fail", "%s: %s" % (second["url"], detail),
                      "the agent is down or not ready: read its logs, check its pod")]
    checks = [check("agent ready", "ok", "%s/-/ready answered 200" % second["url"])]
    found = queues(second["samples"])
    if not found:
        checks.append(check("remote write", "fail",
                            "the agent reports no remote-write queue",
                            "add a remote_write section pointing at the receivers"))
        return checks
    for remote_name, url in found:
        stats = queue_stats(first["samples"], second["samples"], elapsed, remote_name, url)
        checks.append(evaluate_queue(stats, thresholds, remote_write_error))
    return checks


def newest_sample_seconds(samples):
    """The newest sample timestamp in the head (any tenant), in seconds; None if unknown."""
    seconds = maximum(samples, HEAD_MAX_TIME)
    if seconds is None:
        millis = maximum(samples, HEAD_MAX_TIME_MS)
        seconds = millis / 1000.0 if millis is not None else None
    return seconds


def evaluate_receiver(first, second, elapsed, now, thresholds):
    """Checks for one receiver: readiness and ingestion (rate, newest sample age)."""
    t = thresholds_with_defaults(thresholds)
    url = second["url"]
    if not second["ready"]:
        return [check("receiver ready %s" % url, "fail", second.get("detail") or "not ready",
                      "the receiver is down or not ready; remote writes to it fail or go"
                      " to other replicas")]
    checks = [check("receiver ready %s" % url, "ok", "/-/ready answered 200")]
    rate = _rate(first["samples"], second["samples"], APPENDED, elapsed) if first["ready"] else None
    head_max = newest_sample_seconds(second["samples"])
    age = (now - head_max) if head_max and head_max > 0 else None
    evidence = "ingesting %s samples/s, newest sample %s old" % (_fmt(rate), _fmt(age, " s", 0))
    if age is not None and age > t["stale_ingest_seconds"]:
        checks.append(check("receiver ingesting %s" % url, "fail", evidence,
                            "no new samples: check the agents' remote write and the hashring"))
    elif rate is None:
        checks.append(check("receiver ingesting %s" % url, "warn", evidence,
                            "no ingestion counter found in /metrics"))
    else:
        checks.append(check("receiver ingesting %s" % url, "ok", evidence))
    return checks
