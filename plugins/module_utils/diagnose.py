# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure ranking of diagnostic findings: the most likely cause first, with its evidence.

A diagnostic gathers evidence (diagnose_probe.py does the I/O), turns it into findings here and
ranks them. A finding is a check {name, status, evidence, hint} plus `cause` (a stable key),
`score` (how likely it is the cause: higher first) and `remedy` (what an emergency runbook may
do about it: "restart", "repoint", or "" when nothing automatic helps). Ranking is by score,
then by status (fail before warn before ok), then by name, so the order is stable.

Why the scores are ordered as they are: a cause explains the symptoms below it. An agent that
is down explains every queue symptom; a remote-write URL that differs from the inventory and
fails explains the refused connections and the lag; an unreachable endpoint explains a queue
that never sent; a lag is the symptom, listed last among the failures.
"""

from __future__ import absolute_import, annotations, division, print_function

#: cause -> (score, hint). The score is the likelihood rank of a cause when it is present.
CAUSES = {
    "agent_down": (100, "the agent is not Ready: read its log and its pod's events"),
    "wrong_url": (95, "the agent writes to a URL other than the inventory's"
                      " wk_receive_remote_write_url: fix the agent's remote_write url (the"
                      " remote-write-failing runbook re-points it and restarts the agent)"),
    "config_not_loaded": (90, "the ConfigMap changed but the agent still runs the old"
                              " configuration: restart the agent (restart-agent)"),
    "connection_refused": (85, "nothing listens at the remote-write host:port: receivers down"
                               " (run receiver-down) or a wrong port (remote write is 19291)"),
    "dns": (85, "the remote-write host name does not resolve: fix the URL or the DNS record"),
    "tls": (85, "TLS fails: check the CA bundle, the certificate's names and its expiry"),
    "timeout": (80, "the endpoint accepts connections but does not answer: a blocked or"
                    " overloaded port; check network policies, load balancers, receiver load"),
    # Above a timeout: "no route" is the more specific cause (a request under way when the
    # route went also times out).
    "unreachable": (82, "the remote-write endpoint is unreachable: check routes, network"
                        " policies and firewalls between the agent and the receiver"),
    "http_4xx": (75, "the receiver rejects the writes (4xx: not retried, samples dropped):"
                     " wrong path, auth, tenant or limits in the agent's remote_write"),
    "http_5xx": (70, "receivers answer 5xx (retried while the WAL keeps samples): run"
                     " receiver-health"),
    "out_of_order": (65, "409 out of order / out of bounds: duplicate writers or an agent far"
                         " behind; check external labels and lag"),
    "stuck_queue": (60, "the endpoint answers but the queue does not deliver: restart the agent"
                        " (restart-agent)"),
    "slow_sends": (58, "each remote-write request takes long: a slow link between the agent"
                       " and the receivers, or slow receivers (their p99 receive latency tells"
                       " which); raise queue_config.max_shards to keep up meanwhile"),
    "lag": (55, "the queue falls behind: check shards vs max and receiver latency"),
    "dropped": (50, "samples are being dropped or failed: read the agent's log"),
    "shards_max": (45, "the queue runs at its max shards: raise queue_config.max_shards or make"
                       " receivers faster"),
    "log_errors": (30, "read the example line"),
}

_STATUS_ORDER = {"fail": 0, "warn": 1, "skipped": 2, "ok": 3}


def finding(cause, name, status, evidence, hint=None, remedy="", score=None):
    """One finding; its score and default hint come from CAUSES (unknown causes score 10)."""
    default_score, default_hint = CAUSES.get(cause, (10, ""))
    return {"name": name, "status": status, "evidence": evidence,
            "hint": default_hint if hint is None else hint, "cause": cause,
            "score": default_score if score is None else score, "remedy": remedy}


def rank(findings):
    """The findings, most likely cause first: problems (fail, warn) by score, then the rest."""
    def key(item):
        problem = 0 if item["status"] in ("fail", "warn") else 1
        return (problem, -item.get("score", 0), _STATUS_ORDER.get(item["status"], 9),
                item["name"])
    return sorted(findings, key=key)


def most_likely(findings):
    """The top-ranked problem finding, or None when every finding is ok."""
    ranked = rank(findings)
    if ranked and ranked[0]["status"] in ("fail", "warn"):
        return ranked[0]
    return None


def summary(findings, healthy="no problem found"):
    """The run's message: "most likely: NAME: EVIDENCE (then: other problems)"."""
    top = most_likely(findings)
    if top is None:
        return "most likely: nothing wrong: %s (%d check(s) ok)" % (healthy, len(findings))
    others = [f["name"] for f in rank(findings)[1:] if f["status"] in ("fail", "warn")]
    text = "most likely: %s: %s" % (top["name"], top["evidence"])
    if others:
        text += " (then: %s)" % ", ".join(others)
    return text


def remedies(findings):
    """The remedies the problem findings call for, in rank order, each once."""
    out = []
    for item in rank(findings):
        if item["status"] in ("fail", "warn") and item.get("remedy") and \
                item["remedy"] not in out:
            out.append(item["remedy"])
    return out


def endpoint_cause(error, http_status=0):
    """The cause key of a failed probe: promhttp.classify's text (or an HTTP status)."""
    text = (error or "").lower()
    if http_status and 400 <= http_status < 500 and http_status != 405:
        return "http_4xx"
    if http_status >= 500:
        return "http_5xx"
    if "refused" in text:
        return "connection_refused"
    if "dns" in text or "name or service not known" in text:
        return "dns"
    if "tls" in text or "ssl" in text or "certificate" in text:
        return "tls"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    return "unreachable" if text else ""


_LOG_CAUSE = {
    "connection_refused": "connection_refused",
    "dns": "dns",
    "http_4xx_dropped": "http_4xx",
    "http_5xx_retried": "http_5xx",
    "out_of_order": "out_of_order",
    "out_of_bounds": "out_of_order",
    "timeout": "timeout",
    "unreachable": "unreachable",
    "other_error": "log_errors",
}
#: Log classes that say the agent itself cannot reach the endpoint: with them, a queue that
#: falls behind is explained (a restart would not help), even when the endpoint answers from
#: here, because the fault may lie between the agent and the receiver only.
_AGENT_SIDE = ("connection_refused", "dns", "timeout", "unreachable")


def remote_write_findings(evidence, lag_threshold, now=None, send_threshold=1.0):
    """Findings for one agent's remote write, from the evidence diagnose_probe gathers:

    ready (bool), ready_detail, inventory_url, configmap_urls ([str] or None when unread),
    loaded_urls ([str] or None), probes ({url: {"error", "status"}}: an HTTP GET of each URL
    the agent uses; 405 is the receive endpoint answering a GET), queues ([queue_stats]),
    log_classes ({class: {"count", "example", "last", ...}} since the agent started),
    log_source. An error class whose newest line is older than the lag threshold, while every
    probe above is fine, is the past (a receiver restarted an hour ago): ok, with its age.
    A queue whose requests take more than `send_threshold` seconds each (the mean over the
    window) is slow: a warning even while it keeps up.
    """
    import time

    now = time.time() if now is None else now
    out = []
    if not evidence.get("ready"):
        out.append(finding("agent_down", "agent not Ready", "fail", evidence.get(
            "ready_detail") or "not Ready", remedy=""))
    inventory_url = evidence.get("inventory_url") or ""
    loaded = evidence.get("loaded_urls")
    configmap = evidence.get("configmap_urls")
    probes = evidence.get("probes") or {}
    failing = {u for u, p in probes.items() if endpoint_cause(p.get("error"), p.get("status"))}

    def probe_text(url):
        p = probes.get(url) or {}
        if not p:
            return "not probed"
        return p.get("error") or "answers HTTP %s" % p.get("status")

    if inventory_url and loaded is not None and inventory_url not in loaded:
        bad = [u for u in loaded if u in failing]
        status = "fail" if bad or not loaded else "warn"
        # A different URL that works may be deliberate (a migration): reported, not re-pointed.
        out.append(finding(
            "wrong_url", "wrong remote-write URL", status,
            "the agent writes to %s (%s), the inventory says %s (%s)" % (
                ", ".join(loaded) or "nothing", "; ".join(
                    "%s: %s" % (u, probe_text(u)) for u in loaded) or "no queue",
                inventory_url, probe_text(inventory_url)),
            remedy="repoint" if status == "fail" else ""))
    if configmap is not None and loaded is not None and sorted(configmap) != sorted(loaded):
        # A restart loads the ConfigMap: right only when the ConfigMap has the inventory's URL.
        right = not inventory_url or inventory_url in configmap
        out.append(finding(
            "config_not_loaded", "configuration not loaded", "fail" if right else "warn",
            "the ConfigMap's remote_write urls %s differ from the running agent's %s%s" % (
                configmap, loaded, "" if right else "; the ConfigMap lacks the inventory's"
                " %s: a restart would load the wrong URL" % inventory_url),
            remedy="restart" if right else "repoint"))
    for url in sorted(probes):
        p = probes[url]
        cause = endpoint_cause(p.get("error"), p.get("status"))
        used = loaded is None or url in loaded
        if cause:
            out.append(finding(cause, "endpoint %s" % url, "fail" if used else "warn",
                               "%s%s" % (probe_text(url), "" if used else
                                         " (the inventory's URL; the agent does not use it)")))
        else:
            out.append(finding("endpoint_ok", "endpoint %s" % url, "ok",
                               "TCP and HTTP answer (%s)" % probe_text(url), hint=""))
    endpoint_bad = any(u in failing for u in (loaded or probes))
    recent = max(lag_threshold, 60.0)
    agent_side = sorted(
        cls for cls, entry in (evidence.get("log_classes") or {}).items()
        if cls in _AGENT_SIDE and (entry.get("last") is None or now - entry["last"] <= recent))
    for q in evidence.get("queues") or []:
        label = q.get("remote_name") or q.get("url")
        lag = q.get("lag_seconds")
        if q.get("never_sent") or (lag is not None and lag > lag_threshold):
            text = ("never sent a sample" if q.get("never_sent") else
                    "lag %.0f s above %.0f s" % (lag, lag_threshold))
            text += " (url %s, pending %s)" % (q.get("url"), q.get("pending"))
            if endpoint_bad or not evidence.get("ready") or agent_side:
                out.append(finding("lag", "queue %s behind" % label, "fail",
                                   text + "; explained by the %s" % (
                                       "failing endpoint" if endpoint_bad else
                                       "agent not being Ready" if not evidence.get("ready")
                                       else "agent's own errors (%s)" % ", ".join(agent_side))))
            else:
                out.append(finding("stuck_queue", "queue %s stuck" % label, "fail",
                                   text + " while its endpoint answers", remedy="restart"))
        else:
            out.append(finding("queue_ok", "queue %s" % label, "ok",
                               "lag %s" % ("n/a" if lag is None else "%.0f s" % lag), hint=""))
        send = q.get("send_seconds")
        if send is not None and send > send_threshold:
            out.append(finding("slow_sends", "queue %s slow" % label, "warn",
                               "each request takes %.1f s (mean of %d over the window; above"
                               " %.1f s) to %s" % (send, q.get("sends") or 0, send_threshold,
                                                   q.get("url"))))
        dropped = (q.get("dropped_per_second") or 0) + (q.get("failed_per_second") or 0)
        if dropped > 0:
            out.append(finding("dropped", "queue %s dropping" % label, "warn",
                               "%.1f samples/s dropped or failed" % dropped))
        if q.get("shards") is not None and q.get("shards_max") and \
                q["shards"] >= q["shards_max"]:
            out.append(finding("shards_max", "queue %s shards at max" % label, "warn",
                               "%d of max %d shards (desired %s)" % (
                                   q["shards"], q["shards_max"], q.get("shards_desired"))))
    seen = {f["cause"] for f in out if f["status"] != "ok"}
    for cls, entry in sorted((evidence.get("log_classes") or {}).items()):
        cause = _LOG_CAUSE.get(cls)
        if cause is None:
            continue
        status = "warn" if cause in seen or cause in ("log_errors", "http_5xx") else "fail"
        last = entry.get("last")
        past = (not seen and last is not None and now - last > max(lag_threshold, 60.0))
        text = "%d line(s) in %s, e.g. %s" % (entry.get("count", 0),
                                              evidence.get("log_source") or "the log",
                                              entry.get("example", "")[:300])
        if past:
            status = "ok"
            text = "past: the newest %.0f s ago, and remote write is healthy now; %s" % (
                now - last, text)
        item = finding(cause, "log: %s" % cls, status, text, hint="" if past else None)
        item["score"] -= 1  # the same cause seen by a probe is the stronger evidence
        out.append(item)
    return rank(out)


def job_findings(cluster, job, now, newest, up_now, last_up, stale_seconds):
    """One finding for an expected (cluster, job) in Query.

    newest: the newest `up` sample's timestamp over the look-back (None: none at all);
    up_now: max(up) now (None when stale/absent); last_up: newest timestamp where up == 1.
    """
    name = "%s job %s" % (cluster, job)

    def ago(ts):
        return "%s (%.0f s ago)" % (_iso(ts), now - ts)

    if newest is None:
        return finding("never_seen", name, "fail",
                       "no sample of up{cluster=%r,job=%r} in the look-back: the job is not"
                       " scraped or never delivered" % (cluster, job),
                       hint="check the agent's scrape_configs and external label cluster",
                       score=80)
    if now - newest > stale_seconds:
        return finding("not_delivered", name, "fail",
                       "missing since %s: newest sample of up{cluster=%r,job=%r} older than"
                       " %.0f s: the agent does not deliver" % (ago(newest), cluster, job,
                                                               stale_seconds),
                       hint="the agent's remote write fails: run diagnose-remote-write (or"
                       " remote-write-failing)", remedy="remote_write", score=90)
    if up_now is not None and up_now < 1:
        since = ("since %s" % ago(last_up)) if last_up else "for the whole look-back"
        return finding("target_down", name, "fail",
                       "scrape target down %s: up{cluster=%r,job=%r} = 0, its series are"
                       " missing" % (since, cluster, job),
                       hint="the target itself is down or unreachable from the agent: start it"
                       " or fix its address in scrape_configs", score=85)
    return finding("job_ok", name, "ok", "up = %s, newest sample %s" % (
        "n/a" if up_now is None else "%g" % up_now, ago(newest)), hint="", score=0)


def _iso(ts):
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def matrix_text(rows):
    """A reachability matrix as text lines: rows of (source, target, result)."""
    if not rows:
        return "(no endpoints)"
    width = max(len(s) for s, _, _ in rows)
    twidth = max(len(t) for _, t, _ in rows)
    return "\n".join("%s -> %s  %s" % (s.ljust(width), t.ljust(twidth), r or "ok")
                     for s, t, r in rows)
