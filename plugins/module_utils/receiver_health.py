# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure judgement of Thanos Receive health: write quorum arithmetic, ring membership against
the receive pods, forward / replication / receive error ratios between two /metrics samples,
and upload recency. Input comes from the thanos_receiver_health module; output is checks
{name, status, evidence, hint}.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring import (
    endpoint_address,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import (
    maximum,
    total,
)

FORWARDS = "thanos_receive_forward_requests_total"
REPLICATIONS = "thanos_receive_replications_total"
HTTP_REQUESTS = "http_requests_total"
REPLICATION_FACTOR = "thanos_receive_replication_factor"
BUILD_INFO = "thanos_build_info"
LAST_UPLOAD = "thanos_objstore_bucket_last_successful_upload_time"
UPLOADS = "thanos_shipper_uploads_total"
UPLOAD_FAILURES = "thanos_shipper_upload_failures_total"
START_TIME = "process_start_time_seconds"
METRICS = (FORWARDS, REPLICATIONS, HTTP_REQUESTS, REPLICATION_FACTOR, BUILD_INFO, LAST_UPLOAD,
           UPLOADS, UPLOAD_FAILURES, START_TIME)

#: No upload for 3 h is the alert: the Thanos mixin's ThanosReceiveNoUpload
#: (mixin/alerts/receive.libsonnet: increase(thanos_shipper_uploads_total[3h]) == 0).
DEFAULT_UPLOAD_MAX_AGE = 3 * 3600.0


def _version_tuple(version):
    parts = re.findall(r"\d+", version or "")
    return tuple(int(p) for p in parts[:3]) if len(parts) >= 2 else None


def write_quorum(replication_factor, thanos_version=None):
    """(quorum, why): how many of a series' replicas must acknowledge a write.

    floor(RF/2)+1, except RF=2, where Thanos v0.37+ needs 1 (before it needed both, which made
    RF=2 no more available than RF=1). An unknown version is taken as current.
    """
    rf = int(replication_factor)
    if rf < 1:
        raise ValueError("replication factor must be >= 1, got %r" % replication_factor)
    version = _version_tuple(thanos_version)
    if rf == 2:
        if version is not None and version < (0, 37):
            return 2, "RF 2 needs both replicas before Thanos v0.37 (this is %s)" % thanos_version
        return 1, "RF 2 needs 1 replica since Thanos v0.37 (%s)" % (
            thanos_version or "version unknown, assumed >= v0.37")
    return rf // 2 + 1, "floor(RF/2)+1 = %d" % (rf // 2 + 1)


def quorum_tolerance(ring_size, replication_factor, down, thanos_version=None):
    """How many receivers of a ring may fail before writes lose quorum.

    Every series is written to RF distinct members; with many series every set of RF members
    holds some series, so the ring survives any RF - quorum failed members and no more,
    whatever its size. `down` members of the ring are already failed. A ring smaller than RF
    cannot place a series at all.

    Returns a dict: ring_size, replication_factor, quorum, tolerated (failures the ring can
    take when all are up; -1 when ring_size < RF), down, remaining (further failures it can
    take now; negative: some writes are losing quorum now), sentence.
    """
    rf = int(replication_factor)
    quorum, why = write_quorum(rf, thanos_version)
    size = int(ring_size)
    if size < rf:
        tolerated = -1
        remaining = -1
        sentence = ("the ring has %d receiver(s), fewer than the replication factor %d: no"
                    " series can be placed on %d replicas, writes fail" % (size, rf, rf))
    else:
        tolerated = rf - quorum
        remaining = tolerated - int(down)
        sentence = ("ring of %d, replication factor %d, write quorum %d (%s): %d receiver(s)"
                    " may fail before writes lose quorum; %d of the ring %s down now, so "
                    % (size, rf, quorum, why, tolerated, down, "is" if down == 1 else "are"))
        if remaining > 0:
            sentence += "%d more may fail" % remaining
        elif remaining == 0:
            sentence += "no further receiver may fail"
        else:
            sentence += ("writes whose replicas include %d down receivers are losing quorum"
                         % (tolerated + 1))
    return {"ring_size": size, "replication_factor": rf, "quorum": quorum,
            "tolerated": tolerated, "down": int(down), "remaining": remaining,
            "sentence": sentence}


def ring_endpoints(rings):
    """{ring name: [endpoint addresses]} of a parsed hashring file."""
    out = {}
    for index, ring in enumerate(rings if isinstance(rings, list) else []):
        if isinstance(ring, dict):
            name = ring.get("hashring") or "ring-%d" % index
            out[name] = [endpoint_address(e) for e in ring.get("endpoints") or []]
    return out


def membership(rings, pods):
    """Ring membership against the receive pods.

    `pods`: [{"name", "endpoint", "ready"}] (endpoint: the pod rendered with the inventory's
    endpoint template). Returns (missing, orphans, down): Ready pods in no ring, ring
    endpoints without a Ready pod, and per ring the number of its members not Ready.
    """
    by_endpoint = {p["endpoint"]: p for p in pods if p.get("endpoint")}
    members = set()
    down = {}
    orphans = []
    for name, endpoints in ring_endpoints(rings).items():
        down[name] = 0
        for address in endpoints:
            members.add(address)
            pod = by_endpoint.get(address)
            if pod is None or not pod["ready"]:
                down[name] += 1
                if address not in orphans:
                    orphans.append(address)
    missing = [p["name"] for p in pods if p["ready"] and p.get("endpoint") not in members]
    return missing, orphans, down


def counter_delta(first, second, name, **match):
    """Increase of a counter (summed over matching series) between two samples; None when
    absent. A counter that went down was reset by a restart: count from zero."""
    before, after = total(first, name, **match), total(second, name, **match)
    if after is None:
        return None
    if before is None or after < before:
        return after
    return after - before


def _delta_by(first, second, name, label, keep=None):
    """{label value: increase} of a counter between two samples."""
    out = {}
    for labels, value in second.get(name, []):
        if keep is not None and not all(labels.get(k) == v for k, v in keep.items()):
            continue
        key = labels.get(label, "")
        before = None
        for old_labels, old in first.get(name, []):
            if old_labels == labels:
                before = old
        delta = value if before is None or value < before else value - before
        out[key] = out.get(key, 0.0) + delta
    return out


def error_ratios(first, second):
    """Ratios over the window between two samples of one receiver:
    forward and replication (errors / all, by `result`), and remote-write requests answered
    5xx and 4xx (by `code` of handler="receive"). Each entry: (errors, total, ratio|None)."""
    out = {}
    for key, name in (("forward", FORWARDS), ("replication", REPLICATIONS)):
        by_result = _delta_by(first, second, name, "result")
        all_ = sum(by_result.values())
        errors = sum(v for k, v in by_result.items() if k != "success")
        out[key] = (errors, all_, errors / all_ if all_ > 0 else None)
    by_code = _delta_by(first, second, HTTP_REQUESTS, "code", keep={"handler": "receive"})
    all_ = sum(by_code.values())
    for key, prefix in (("receive_5xx", "5"), ("receive_4xx", "4")):
        errors = sum(v for k, v in by_code.items() if k.startswith(prefix))
        out[key] = (errors, all_, errors / all_ if all_ > 0 else None)
    return out


def thanos_version(samples):
    for labels, _ in samples.get(BUILD_INFO, []):
        if labels.get("version"):
            return labels["version"]
    return None


def check(name, status, evidence, hint=""):
    return {"name": name, "status": status, "evidence": evidence, "hint": hint}


def _pct(errors, all_, ratio):
    if ratio is None:
        return "no requests"
    return "%.1f%% (%d/%d)" % (ratio * 100, errors, all_)


def evaluate_receiver(pod, first, second, failed_ratio):
    """Error ratios of one receiver over the window: fail above `failed_ratio`, warn on any
    error, ok otherwise."""
    name = "receiver %s" % pod["name"]
    if not pod["ready"]:
        return check(name, "fail", "not Ready%s" % (": " + pod["error"] if pod.get("error")
                                                    else ""),
                     "the receiver is down: its share of every series goes to the other"
                     " replicas; see the quorum check for how many more may fail")
    if pod.get("error"):
        return check(name, "warn", "Ready, but /metrics through the pod proxy failed: %s"
                     % pod["error"], "check the pod proxy RBAC (pods/proxy get)")
    ratios = error_ratios(first, second)
    labels = (("forward", "forwarded to other receivers failed"),
              ("replication", "replications failed"),
              ("receive_5xx", "remote writes answered 5xx"),
              ("receive_4xx", "remote writes answered 4xx"))
    evidence = ", ".join("%s %s" % (what, _pct(*ratios[key])) for key, what in labels)
    over = [what for key, what in labels
            if ratios[key][2] is not None and ratios[key][2] > failed_ratio]
    any_error = [what for key, what in labels if ratios[key][0] > 0]
    if over:
        return check(name, "fail", "above %.1f%%: %s -- %s" % (failed_ratio * 100,
                                                                 ", ".join(over), evidence),
                     "forward/replication errors: a peer receiver is down or slow (see the"
                     " ring check); 5xx: quorum lost; 4xx: out of order/bounds or limits,"
                     " read the receiver's log")
    if any_error:
        return check(name, "warn", "some errors: %s" % evidence,
                     "transient errors during the window; run again to see if they persist")
    return check(name, "ok", evidence)


def evaluate_upload(pod, samples, now, max_age):
    """Upload recency of one receiver from its own metrics: the last successful upload to the
    bucket, or, when there was none yet, whether the receiver is young enough not to have cut
    a block."""
    name = "uploads %s" % pod["name"]
    if not pod["ready"] or pod.get("error"):
        return check(name, "skipped", "receiver not readable")
    last = maximum(samples, LAST_UPLOAD)
    started = maximum(samples, START_TIME)
    failures = total(samples, UPLOAD_FAILURES)
    uploads = total(samples, UPLOADS)
    extra = ", %d upload(s) since start, %d failed" % (uploads or 0, failures or 0)
    if last is None:
        return check(name, "warn", "the receiver exports no %s" % LAST_UPLOAD,
                     "check the bucket's newest block for this receiver's replica label")
    if last > 0:
        age = now - last
        status = "fail" if age > max_age else "ok"
        return check(name, status, "last successful upload %.0f s ago (limit %.0f s)%s"
                     % (age, max_age, extra),
                     "" if status == "ok" else "uploads stopped: read the receiver's log for"
                     " objstore errors, check the bucket credentials")
    up = now - started if started else None
    if up is not None and up <= max_age:
        return check(name, "ok", "no upload yet; up %.0f s, within %.0f s%s"
                     % (up, max_age, extra))
    return check(name, "fail", "no successful upload in %s s of uptime%s"
                 % ("%.0f" % up if up is not None else "?", extra),
                 "blocks are not reaching the bucket: read the receiver's log for objstore"
                 " errors")


def evaluate(rings, pods, samples, replication_factor, now, failed_ratio,
             upload_max_age=DEFAULT_UPLOAD_MAX_AGE):
    """Every check of one observability cluster.

    `samples`: {pod name: (first, second)} parsed /metrics; `replication_factor`: the
    inventory's (the receivers' own thanos_receive_replication_factor wins when they report
    one, and a mismatch is a warning).
    """
    checks = []
    missing, orphans, down = membership(rings, pods)
    ready = [p["name"] for p in pods if p["ready"]]
    evidence = "%d pod(s), %d Ready; ring %s" % (
        len(pods), len(ready), "; ".join("%s: %d endpoint(s)" % (n, len(e))
                                        for n, e in ring_endpoints(rings).items()))
    problems = []
    if missing:
        problems.append("Ready pods in no ring: %s" % ", ".join(missing))
    if orphans:
        problems.append("ring endpoints without a Ready pod: %s" % ", ".join(orphans))
    if problems:
        checks.append(check("ring membership", "fail", "; ".join(problems) + " -- " + evidence,
                            "a Ready receiver outside the ring takes no writes; an endpoint"
                            " without a Ready pod fails its share of replicas: restart the"
                            " receiver or run the hashring runbook"))
    else:
        checks.append(check("ring membership", "ok", evidence))

    version = None
    reported = set()
    for _, second in samples.values():
        version = version or thanos_version(second)
        value = maximum(second, REPLICATION_FACTOR)
        if value is not None:
            reported.add(int(value))
    rf = int(replication_factor)
    rf_note = ""
    if len(reported) == 1 and reported != {rf}:
        rf_note = ("the receivers run --receive.replication-factor=%d, the inventory says %d"
                   % (next(iter(reported)), rf))
        rf = next(iter(reported))
    elif len(reported) > 1:
        rf_note = "receivers disagree on the replication factor: %s" % sorted(reported)
        rf = max(reported)
    for ring, endpoints in ring_endpoints(rings).items():
        q = quorum_tolerance(len(endpoints), rf, down.get(ring, 0), version)
        status = "ok" if q["remaining"] > 0 else ("warn" if q["remaining"] == 0 else "fail")
        hint = ""
        if q["tolerated"] == 0 and q["remaining"] == 0:
            hint = "replication factor %d tolerates no failed receiver; raise it to 3" % rf
        elif status != "ok":
            hint = "bring the down receivers back before any maintenance (one at a time)"
        if rf_note:
            status = "warn" if status == "ok" else status
            hint = (hint + "; " if hint else "") + rf_note + ": fix wk_receive_replication_factor"
        result = check("write quorum %s" % ring, status, q["sentence"], hint)
        result["quorum"] = q
        checks.append(result)

    for pod in pods:
        first, second = samples.get(pod["name"], ({}, {}))
        checks.append(evaluate_receiver(pod, first, second, failed_ratio))
    for pod in pods:
        _, second = samples.get(pod["name"], ({}, {}))
        checks.append(evaluate_upload(pod, second, now, upload_max_age))
    return checks
