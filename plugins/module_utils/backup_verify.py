# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""verify-backups: restore the newest backup of each kind into scratch and check its content.

The restores themselves are the restore runbooks' modules (tsdb_restore, thanos_bucket_restore,
opensearch_restore), run as tasks of playbooks/verify-backups.yml; this file holds what they
lack: which backup is the newest of each kind (plan), a real Prometheus / Thanos started on the
restored data and asked through its HTTP API for series and the sample time range, the scratch
cleanup, the verdict and the `watchkeeper_backup_*` metrics.

Pure parts (time range judgement, query step, verdict, metric carry-forward) have no I/O and
are table-tested.
"""

from __future__ import absolute_import, annotations, division, print_function

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

KINDS = ("tsdb", "bucket", "opensearch")
#: PromQL for "every series": a selector must match at least one non-empty label.
EVERY_SERIES = '{__name__=~".+"}'
#: Prometheus' default lookback: a sample counts at an instant up to 5 minutes after it.
LOOKBACK_MS = 5 * 60 * 1000
#: query_range answers at most 11000 points; stay well under it.
MAX_POINTS = 2000
METRIC_PREFIX = "watchkeeper_backup"
#: Scratch OpenSearch indices are named SCRATCH_INDEX_PREFIX + run + '-' + source.
SCRATCH_INDEX_PREFIX = "wk-verify-"


class VerifyFailure(ModuleFailure):
    """A verification that failed."""


# --------------------------------------------------------------------------- pure logic


def iso(ms):
    """RFC 3339 UTC of a millisecond timestamp ('-' for None)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def query_step_seconds(min_ms, max_ms, max_points=MAX_POINTS):
    """A range-query step (whole seconds, >= 1) giving at most `max_points` points."""
    span = max(0, int(max_ms) - int(min_ms)) / 1000.0
    return max(1, int(-(-span // max_points)))


def instants(matrix):
    """(first, last) instant in ms at which a query_range answer has a value, or (None, None)
    when it has none."""
    stamps = [float(point[0]) for series in matrix or [] for point in series.get("values", [])]
    if not stamps:
        return None, None
    return round(min(stamps) * 1000), round(max(stamps) * 1000)


def bounds(blocks):
    """(min_time, max_time, first block's max_time, last block's min_time) in ms of blocks
    given as [{min_time, max_time}] (the backup's manifest) or {ulid: {minTime, maxTime}}
    (restore-bucket's selection). The first sample must lie in a block that starts first, the
    last in one that ends last: blocks are the resolution a backup's time range has."""
    if isinstance(blocks, dict):
        spans = [(int(b["minTime"]), int(b["maxTime"])) for b in blocks.values()]
    else:
        spans = [(int(b["min_time"]), int(b["max_time"])) for b in blocks]
    if not spans:
        return None, None, None, None
    low = min(s[0] for s in spans)
    high = max(s[1] for s in spans)
    first_block_end = max(s[1] for s in spans if s[0] == low)
    last_block_start = min(s[0] for s in spans if s[1] == high)
    return low, high, first_block_end, last_block_start


def range_problems(first_ms, last_ms, blocks, step_ms):
    """Why the sample time range served from the restored data does not match the backup's
    blocks ([] when it does). `first_ms` / `last_ms` are the first and last instants at which
    a range query with step `step_ms` saw samples of the preceding step: each lies at most one
    step after the sample it saw (None: no data at all).

    The first sample must fall inside the backup's first block, the last inside its last block
    (TSDB blocks are [minTime, maxTime))."""
    low, high, first_block_end, last_block_start = bounds(blocks)
    if low is None:
        return ["the backup lists no block"]
    if first_ms is None or last_ms is None:
        return ["no sample at all between %s and %s" % (iso(low), iso(high))]
    problems = []
    if first_ms < low or first_ms > first_block_end + step_ms:
        problems.append("first sample at %s, the backup's first block covers %s .. %s"
                        % (iso(first_ms), iso(low), iso(first_block_end)))
    if last_ms < last_block_start or last_ms > high + step_ms:
        problems.append("last sample at %s, the backup's last block covers %s .. %s"
                        % (iso(last_ms), iso(last_block_start), iso(high)))
    return problems


def check(name, status, evidence, hint=""):
    return {"name": name, "status": status, "evidence": evidence, "hint": hint}


def kind_check(kind, outcome):
    """The journal check of one kind from its outcome: {status: verified|failed|skipped|
    planned, evidence, hint}."""
    name = "%s backup" % kind
    status = {"verified": "ok", "planned": "ok", "skipped": "skipped"}.get(
        outcome.get("status"), "fail")
    return check(name, status, outcome.get("evidence", ""), outcome.get("hint", ""))


def merge_verified(previous, cluster, verified):
    """The metric samples to write: {(kind, cluster): {metric: value}} from the previous file
    (`previous`, same shape) with this run's `verified` {kind: {metric: value}} for `cluster`
    replacing its kinds. A kind that failed is absent from `verified`, so its last verified
    timestamp is carried forward, never advanced."""
    merged = dict((key, dict(values)) for key, values in previous.items())
    for kind, values in verified.items():
        merged[(kind, cluster)] = dict(values)
    return merged


# --------------------------------------------------------------------------- processes


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent():
    """In the child: get SIGTERM when the module process dies (killed by a timeout), so a
    server started on scratch data never outlives its verification."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server(object):
    """A program started on scratch data, stopped by its own PID."""

    def __init__(self, name, args, log_path):
        self.name, self.args, self.log_path = name, args, log_path
        self.popen = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL,
                                          preexec_fn=_die_with_parent)
        return self

    def log_tail(self, lines=5):
        try:
            with open(self.log_path, errors="replace") as handle:
                return " | ".join(line.strip() for line in handle.read().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace=15.0):
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


def http_json(url, timeout=30.0):
    """GET `url` and decode its JSON answer (Prometheus API envelope unwrapped)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read()).get("error", "")
        except ValueError:
            said = ""
        raise VerifyFailure("GET %s: HTTP %s %s" % (url, exc.code, said)) from exc
    except (OSError, ValueError) as exc:
        raise VerifyFailure("GET %s: %s" % (url, exc)) from exc
    if isinstance(body, dict) and body.get("status") == "success":
        return body.get("data")
    raise VerifyFailure("GET %s: %s" % (url, body.get("error") if isinstance(body, dict)
                                        else body))


def wait_ready(server, url, deadline_s, what):
    """Poll `url` until it answers 200 (bounded); fail with the server's last log lines."""
    import urllib.request

    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        if server.popen is not None and server.popen.poll() is not None:
            raise VerifyFailure("%s exited with %s before it was ready: %s" % (
                server.name, server.popen.returncode, server.log_tail()),
                "read %s" % server.log_path)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise VerifyFailure("%s not ready at %s after %.0f s (%s): %s" % (
        server.name, url, deadline_s, what, last or server.log_tail()),
        "read %s" % server.log_path)


def served_content(url, blocks, timeout=120.0):
    """Ask a Prometheus-API server (Prometheus, Thanos Query) over the restored data for its
    series and the time range of its samples, judged against the backup's blocks.
    Returns {series, first, last, step, problems}."""
    from urllib.parse import urlencode

    low, high, _, _ = bounds(blocks)
    if low is None:
        return {"series": 0, "first": None, "last": None, "step": 0,
                "problems": ["the backup lists no block"]}
    # The series API reads only the index; [low, high + lookback] covers every sample.
    series = http_json("%s/api/v1/series?%s" % (url, urlencode({
        "match[]": EVERY_SERIES, "start": "%.3f" % (low / 1000.0),
        "end": "%.3f" % ((high + LOOKBACK_MS) / 1000.0)})), timeout) or []
    step = query_step_seconds(low, high)
    # last_over_time over one step counts, at each instant t, the series with a sample in
    # (t - step, t]: no 5-minute lookback blurs the edges, and it keeps the metric name (other
    # *_over_time functions drop it and same-labelled series would collide).
    answer = http_json("%s/api/v1/query_range?%s" % (url, urlencode({
        "query": "count(last_over_time(%s[%ds]))" % (EVERY_SERIES, step),
        "start": "%.3f" % (low / 1000.0), "end": "%.3f" % ((high + step * 1000) / 1000.0),
        "step": str(step)})), timeout)
    first, last = instants((answer or {}).get("result"))
    problems = range_problems(first, last, blocks, step * 1000)
    if not series:
        problems.insert(0, "no series between %s and %s" % (iso(low), iso(high)))
    return {"series": len(series), "first": first, "last": last, "step": step,
            "problems": problems}


def remove_scratch_dir(path, root):
    """Delete a local scratch directory, refusing anything outside `root`."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    if real == base or not real.startswith(base + os.sep):
        raise VerifyFailure("refusing to delete %s: not inside the scratch directory %s"
                            % (path, root))
    existed = os.path.exists(real)
    shutil.rmtree(real, ignore_errors=True)
    parent = os.path.dirname(real)
    while parent.startswith(base + os.sep):  # the run's empty directories go too
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)
    return existed


def delete_all_versions(client, bucket, prefix):
    """Delete every version and delete marker under a scratch `prefix` (a scratch copy is no
    backup: versioning must not keep it). Returns the number of versions deleted."""
    deleted = 0
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(doomed), 1000):
            batch = doomed[start:start + 1000]
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch,
                                                                  "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                raise VerifyFailure("deleting s3://%s/%s: %d version(s) refused, first %s: %s"
                                    % (bucket, prefix, len(errors), errors[0].get("Key"),
                                       errors[0].get("Message")))
            deleted += len(batch)
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                        Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    return deleted


# --------------------------------------------------------------------------- metrics


def metrics_file(textfile_dir, cluster):
    """One textfile per cluster: clusters run in parallel forks and never share a file."""
    safe = "".join(c if c.isalnum() else "_" for c in cluster)
    return os.path.join(textfile_dir, "watchkeeper_backup_verification_%s.prom" % safe)


def read_previous(path):
    """{(kind, cluster): {metric: value}} of an earlier run's textfile ({} when none)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    if not os.path.isfile(path):
        return found
    with open(path) as handle:
        text = handle.read()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.labels.get("kind", ""), sample.labels.get("cluster", ""))
            found.setdefault(key, {})[sample.name] = sample.value
    return found


METRICS = (
    ("last_verified_timestamp_seconds",
     "End of the last successful verification (restore into scratch and content check)."),
    ("verified_backup_timestamp_seconds",
     "When the backup the last successful verification restored was taken (its newest data)."),
    ("verified_backup_age_seconds",
     "Age of that backup when it was verified."),
)


def record_verified(textfile_dir, cluster, verified, pushgateway=None):
    """Write the per-cluster textfile (carrying forward kinds not verified by this run) and
    push this run's verified kinds to a Pushgateway, one group per kind and cluster, so a
    failed kind's group keeps its previous push. Returns (path, push error or '')."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

    os.makedirs(textfile_dir, exist_ok=True)
    path = metrics_file(textfile_dir, cluster)
    samples = merge_verified(read_previous(path), cluster, dict(
        (kind, dict(("%s_%s" % (METRIC_PREFIX, name), value) for name, value in v.items()))
        for kind, v in verified.items()))

    def registry_of(keys):
        registry = CollectorRegistry()
        gauges = dict((name, Gauge("%s_%s" % (METRIC_PREFIX, name), text, ["kind", "cluster"],
                                   registry=registry)) for name, text in METRICS)
        for key in keys:
            for name, gauge in gauges.items():
                value = samples[key].get("%s_%s" % (METRIC_PREFIX, name))
                if value is not None:
                    gauge.labels(*key).set(value)
        return registry

    write_to_textfile(path, registry_of(sorted(samples)))
    error = ""
    if pushgateway:
        for kind in sorted(verified):
            try:
                push_to_gateway(pushgateway, job="watchkeeper", registry=registry_of(
                    [(kind, cluster)]), grouping_key={"kind": kind, "cluster": cluster})
            except OSError as exc:  # a metrics push never fails a verification
                error = "push to %s failed: %s" % (pushgateway, exc)
    return path, error
