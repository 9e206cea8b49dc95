# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Classify a Prometheus Agent's log lines: which remote-write errors, how many, an example each.

Pure functions over text. Prometheus logs logfmt (`ts=... level=warn ... msg="..." err="..."`).
What each class means for data (the remote-write specification's retries and backoff,
https://prometheus.io/docs/concepts/remote_write_spec/#retries-backoff, as Prometheus'
storage/remote/client.go implements it):

- a 4xx answer is a *non-recoverable error*: the batch is dropped, never retried;
- 409 out of order / out of bounds is a 4xx the receiver gives for samples it cannot append
  (older than its head, or a series' newer sample already stored): dropped as well;
- a 5xx answer, a refused connection, a failed DNS lookup or a timeout is retried with backoff
  while the WAL keeps the samples (about 2 h of them).
"""

from __future__ import absolute_import, annotations, division, print_function

import re
from datetime import UTC, datetime

#: (class, whether samples are lost, what it means, what to do) in precedence order: the first
#: class whose pattern matches a line wins (a 409 "out of order" is reported as out of order,
#: not as a generic 4xx).
CLASSES = (
    ("unsent_at_shutdown", True, "samples still queued when the agent stopped were dropped",
     "an agent stopped while its queue could not deliver; those samples are lost (a restart"
     " does not resend them)"),
    ("out_of_order", True, "409 out of order: samples older than the series' newest, dropped",
     "two writers for the same series (duplicate external labels / replicas without a replica"
     " label), or a restarted agent resending; check the agents' external labels"),
    ("out_of_bounds", True, "409 out of bounds: samples outside the receiver's head window,"
     " dropped", "the agent fell too far behind (lag above the head window) or its clock is"
     " off; check lag and NTP"),
    ("dns", False, "DNS lookup of the remote-write host failed, retrying",
     "the remote_write url's host name does not resolve: fix the URL or the DNS record"),
    ("unreachable", False, "no route from the agent to the remote-write host, retrying",
     "the agent's network cannot reach the receiver (a dropped route, a network policy or a"
     " firewall between them) although it may answer from elsewhere: check from the agent's"
     " node and namespace"),
    ("connection_refused", False, "connection refused by the remote-write endpoint, retrying",
     "nothing listens at the remote_write url's host:port: receivers down, or a wrong port"
     " (remote write is 19291)"),
    ("http_4xx_dropped", True, "4xx answer: non-recoverable, the batch is dropped",
     "the receiver rejects the request (wrong path, auth, tenant, limits): fix the agent's"
     " remote_write config; dropped samples are lost"),
    ("http_5xx_retried", False, "5xx answer: retried with backoff while the WAL keeps samples",
     "receivers failing or without quorum: run receiver-health"),
    ("timeout", False, "request timed out, retrying",
     "receivers slow or the network lossy: check receiver latency and remote_timeout"),
    ("other_error", False, "another error or warning", "read the example line"),
)

_STATUS = re.compile(r"server returned HTTP status (\d{3})")
_PATTERNS = (
    ("unsent_at_shutdown", re.compile(r'Failed to flush all samples on shutdown|'
                                      r'err="context canceled"')),
    ("out_of_order", re.compile(r"out of order sample|out-of-order|out of order")),
    ("out_of_bounds", re.compile(r"out of bounds|out-of-bounds")),
    ("dns", re.compile(r"lookup \S+.*(no such host|server misbehaving|i/o timeout)|"
                       r"no such host")),
    ("unreachable", re.compile(r"no route to host|network is unreachable")),
    ("connection_refused", re.compile(r"connection refused")),
    ("timeout", re.compile(r"context deadline exceeded|i/o timeout|Client\.Timeout")),
)
#: Warnings every orderly restart logs: not errors.
_BENIGN = re.compile(r'msg="Received SIGTERM, exiting gracefully')
_LEVEL = re.compile(r"(?:^|\s)level=(\w+)")
_TS = re.compile(r"^ts=(\S+)")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')

#: Longest example line kept (a 4xx body can be long).
EXAMPLE_CHARS = 400


def fields(line):
    """The logfmt key/value pairs of a line (values unquoted)."""
    out = {}
    for key, value in _FIELD.findall(line):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1].replace('\\"', '"')
        out[key] = value
    return out


def line_time(line):
    """Epoch seconds of a logfmt line's `ts=`, None without one."""
    match = _TS.match(line)
    if not match:
        return None
    raw = match.group(1)
    try:
        parsed = datetime.strptime(raw[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    fraction = re.match(r"\.(\d+)", raw[19:])
    seconds = parsed.timestamp()
    if fraction:
        seconds += float("0." + fraction.group(1))
    return seconds


def classify(line):
    """The class of one log line (see CLASSES), or None when it is not an error or warning."""
    level = _LEVEL.search(line)
    if not level or level.group(1) not in ("warn", "error"):
        return None
    if _BENIGN.search(line):
        return None
    for name, pattern in _PATTERNS[:3]:
        if pattern.search(line):
            return name
    status = _STATUS.search(line)
    if status:
        code = int(status.group(1))
        if 400 <= code < 500:
            return "http_4xx_dropped"
        if code >= 500:
            return "http_5xx_retried"
    for name, pattern in _PATTERNS[3:]:
        if pattern.search(line):
            return name
    return "other_error"


def summarize(lines, since=None, until=None):
    """Counts and one example (the most recent) per class, for lines at or after `since` and
    before `until` (epoch seconds; lines without a timestamp are kept only when neither is
    given).

    Returns {"lines": n_considered, "classes": {name: {"count", "samples", "example", "lost",
    "meaning", "hint", "remote_names", "last"}}}; only classes that occurred appear. `samples`
    sums the lines' `count=` (samples in the batches Prometheus gave up on); `last` is the
    newest such line's time (None when its lines carry none).
    """
    meta = {name: (lost, meaning, hint) for name, lost, meaning, hint in CLASSES}
    found = {}
    considered = 0
    for line in lines:
        line = line.rstrip("\n")
        if since is not None or until is not None:
            stamp = line_time(line)
            if stamp is None or (since is not None and stamp < since) or \
                    (until is not None and stamp >= until):
                continue
        considered += 1
        stamp = line_time(line) if since is None and until is None else stamp
        name = classify(line)
        if name is None:
            continue
        lost, meaning, hint = meta[name]
        entry = found.setdefault(name, {"count": 0, "samples": 0, "example": "",
                                        "lost": lost, "meaning": meaning, "hint": hint,
                                        "remote_names": [], "last": None})
        entry["count"] += 1
        if stamp is not None and (entry["last"] is None or stamp > entry["last"]):
            entry["last"] = stamp
        entry["example"] = line[:EXAMPLE_CHARS]
        values = fields(line)
        if values.get("count", "").isdigit():
            entry["samples"] += int(values["count"])
        remote = values.get("remote_name")
        if remote and remote not in entry["remote_names"]:
            entry["remote_names"].append(remote)
    return {"lines": considered, "classes": found}


def check_of(summary, source, window_seconds):
    """One check {name, status, evidence, hint} from a summary: fail when samples are being
    dropped or cannot be delivered at all (4xx, out of order / bounds, refused, DNS), warn on
    retried errors (5xx, timeouts) and other warnings, ok otherwise."""
    classes = summary["classes"]
    order = [name for name, _, _, _ in CLASSES if name in classes]
    if not order:
        return {"name": "agent log", "status": "ok",
                "evidence": "no remote-write error in the last %d s of %s (%d lines)" % (
                    window_seconds, source, summary["lines"]),
                "hint": ""}
    failing = ("unsent_at_shutdown", "out_of_order", "out_of_bounds", "dns", "connection_refused",
               "http_4xx_dropped")
    status = "fail" if any(n in failing for n in order) else "warn"
    parts = []
    for name in order:
        entry = classes[name]
        queues = " (queue %s)" % ", ".join(entry["remote_names"]) if entry["remote_names"] \
            else ""
        samples = ", %d samples" % entry["samples"] if entry["samples"] else ""
        parts.append("%s x%d%s%s: %s; e.g. %s" % (name, entry["count"], samples, queues,
                                                  entry["meaning"], entry["example"]))
    hints = [classes[n]["hint"] for n in order]
    return {"name": "agent log", "status": status,
            "evidence": "last %d s of %s: " % (window_seconds, source) + " | ".join(parts),
            "hint": "; ".join(hints)}


_REPLAY_DONE = re.compile(r'msg="Done replaying WAL"')


def replay_summary(lines, since=None):
    """What the log says about a WAL replay at or after `since`: the storage replay start
    and, per remote-write queue, "Done replaying WAL" with its duration ("" when none)."""
    started = False
    done = []
    for line in lines:
        if since is not None:
            stamp = line_time(line)
            if stamp is None or stamp < since:
                continue
        if "replaying WAL" in line and "Done" not in line:
            started = True
        elif _REPLAY_DONE.search(line):
            f = fields(line)
            done.append("%s in %s" % (f.get("remote_name") or f.get("url", "?"),
                                      f.get("duration", "?")))
    if not started and not done:
        return ""
    text = "WAL replay started" if started else "WAL replay"
    if done:
        text += "; remote write done replaying WAL: " + ", ".join(done)
    return text


def process_started(lines, since=None):
    """Timestamp of the last `msg="Starting Prometheus ..."` line at or after `since`: where a
    new process's log begins (process_start_time_seconds is only as precise as the kernel's
    boot time, a whole second, too coarse to split the old process's shutdown lines from
    the new one's)."""
    found = None
    for line in lines:
        if 'msg="Starting Prometheus' in line:
            stamp = line_time(line)
            if stamp is not None and (since is None or stamp >= since):
                found = stamp
    return found
