# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure evaluation of the operations checklists (daily, weekly, monthly). No I/O; table-tested.

Every function takes what a probe read (plus thresholds and `now`) and returns checks:
{name, status (ok | warn | fail | skipped), evidence, hint}. A check never passes for want of
data: an endpoint the inventory does not declare is `skipped` with the reason, a value that
could not be read is `fail` or `warn` with what was tried.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

STATUSES = ("ok", "warn", "fail", "skipped")
#: Worst first: the order a verdict and a report sort by.
SEVERITY = {"fail": 3, "warn": 2, "skipped": 1, "ok": 0}

GIB = 1024 ** 3

#: Defaults of every checklist threshold (the inventory's wk_threshold_* override them).
DEFAULTS = {
    "disk_warn_percent": 80.0,
    "disk_fail_percent": 90.0,
    "wal_bytes": 2.0 * GIB,
    "s3_growth_percent": 50.0,
    "alert_firing_hours": 24.0,
    "log_retention_days": 30.0,
    "backup_verified_age_days": 7.0,
    "process_memory_bytes": 8.0 * GIB,
    "process_cpu_cores": 4.0,
}


def check(name, status, evidence, hint=""):
    """One checklist item's outcome."""
    return {"name": name, "status": status, "evidence": evidence, "hint": hint}


def skipped(name, reason):
    """An item that cannot run here, with the reason (never counted as a pass)."""
    return check(name, "skipped", reason)


def undeclared(name, variable, what):
    """The inventory does not declare the endpoint the item needs."""
    return skipped(name, "not declared: the inventory sets no %s (%s)" % (variable, what))


def thresholds_with_defaults(thresholds):
    """DEFAULTS overridden by the given thresholds; None or empty means "use the default"."""
    merged = dict(DEFAULTS)
    for key, value in (thresholds or {}).items():
        if value is not None and value != "":
            merged[key] = float(value)
    return merged


def worst(checks):
    """The worst status of `checks` ("ok" for none)."""
    statuses = [c.get("status", "fail") for c in checks] or ["ok"]
    return max(statuses, key=lambda s: SEVERITY.get(s, 3))


def human_bytes(value):
    if value is None:
        return "n/a"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%.1f TiB" % value


# --------------------------------------------------------------------------- daily


def evaluate_application(app):
    """One ArgoCD Application: Synced and Healthy is ok; no status at all means no controller
    reconciles it (warn, never a pass); OutOfSync / Degraded / Missing / Unknown fail;
    Progressing / Suspended warn."""
    name = "argocd app %s" % app["name"]
    sync, health = app.get("sync"), app.get("health")
    revision = app.get("revision") or ""
    where = "Application %s/%s" % (app.get("namespace", "argocd"), app["name"])
    if not sync and not health:
        return check(name, "warn", "%s has no .status (sync and health unknown)" % where,
                     "no ArgoCD application controller has reconciled it: check that ArgoCD"
                     " runs and manages this namespace")
    evidence = "%s: sync %s, health %s%s" % (where, sync or "unknown", health or "unknown",
                                              (" at %s" % revision[:12]) if revision else "")
    message = app.get("message")
    if message:
        evidence += " (%s)" % message
    if sync == "Synced" and health == "Healthy":
        return check(name, "ok", evidence)
    if health in ("Progressing", "Suspended") and sync in ("Synced", None):
        return check(name, "warn", evidence, "a sync is in progress or the app is suspended;"
                     " look again after it settles")
    hints = []
    if sync != "Synced":
        hints.append("live objects differ from git: `argocd app diff %s`, then sync (or find"
                     " who changed them imperatively)" % app["name"])
    if health != "Healthy":
        hints.append("a resource is not healthy: `argocd app get %s` names it" % app["name"])
    return check(name, "fail", evidence, "; ".join(hints))


def evaluate_applications(apps, namespace, cluster):
    """Checks for the Applications that deploy to `cluster`."""
    if not apps:
        return [check("argocd applications", "warn",
                      "no Application in namespace %s targets cluster %s" % (namespace, cluster),
                      "check wk_argocd_namespace and the Applications' spec.destination.name")]
    return [evaluate_application(a) for a in sorted(apps, key=lambda a: a["name"])]


def evaluate_targets(targets):
    """An agent's scrape targets (from /api/v1/targets): every active target up."""
    if not targets:
        return check("agent scrape targets", "warn", "the agent reports no active target",
                     "check the agent's scrape_configs")
    down = [t for t in targets if t.get("health") != "up"]
    evidence = "%d of %d target(s) up" % (len(targets) - len(down), len(targets))
    if not down:
        return check("agent scrape targets", "ok", evidence)
    detail = "; ".join("%s %s %s: %s" % (t.get("job", "?"), t.get("url", "?"), t.get("health"),
                                          t.get("error") or "no error given") for t in down[:5])
    more = " (+%d more)" % (len(down) - 5) if len(down) > 5 else ""
    return check("agent scrape targets", "fail", "%s; down: %s%s" % (evidence, detail, more),
                 "the target's process or pod is down, or the agent cannot reach it: fix the"
                 " target (its series go stale in Query meanwhile)")


def evaluate_disk(path, usage, thresholds):
    """One data volume. `usage` = {total, used, available, directory_bytes, mount} (bytes),
    or {error}."""
    t = thresholds_with_defaults(thresholds)
    name = "disk %s" % path
    if usage.get("error"):
        return skipped(name, usage["error"])
    size = usage["used"] + usage["available"]  # what df counts: root-reserved blocks excluded
    percent = 100.0 * usage["used"] / size if size else 0.0
    evidence = "%.1f%% used (%s of %s, %s free) on %s" % (
        percent, human_bytes(usage["used"]), human_bytes(size), human_bytes(usage["available"]),
        usage.get("mount") or "its filesystem")
    if usage.get("directory_bytes") is not None:
        evidence += "; the volume holds %s" % human_bytes(usage["directory_bytes"])
    hint = ("grow the volume (PVC resize) or shorten retention (--tsdb.retention,"
            " --storage.agent.retention.max-time) before writes fail")
    if percent >= t["disk_fail_percent"]:
        return check(name, "fail", "%s (>= %.0f%%)" % (evidence, t["disk_fail_percent"]), hint)
    if percent >= t["disk_warn_percent"]:
        return check(name, "warn", "%s (>= %.0f%%)" % (evidence, t["disk_warn_percent"]), hint)
    return check(name, "ok", evidence)


# --------------------------------------------------------------------------- weekly


def evaluate_bucket(bucket, usage, previous, now, thresholds):
    """Bytes and objects of one bucket, and growth since the previous run's record
    (`previous` = {bytes, objects, at} or None). Growth is scaled to a week."""
    t = thresholds_with_defaults(thresholds)
    name = "s3 bucket %s" % bucket
    if usage.get("error"):
        return check(name, "fail", "cannot list bucket %s: %s" % (bucket, usage["error"]),
                     "check wk_s3_endpoint, the bucket name and the S3 credentials")
    evidence = "%s in %d object(s)" % (human_bytes(usage["bytes"]), usage["objects"])
    if usage.get("versions") is not None:
        evidence += " (+%d noncurrent version(s))" % usage["versions"]
    if not previous or previous.get("at") is None or now <= previous["at"]:
        return check(name, "ok", evidence + "; no earlier record: growth from the next run on")
    days = (now - previous["at"]) / 86400.0
    delta = usage["bytes"] - previous["bytes"]
    evidence += "; %+d B (%+d objects) since %.1f day(s) ago" % (
        delta, usage["objects"] - previous["objects"], days)
    if previous["bytes"] <= 0 or days < 1:
        # A weekly rate extrapolated from hours is noise: judge from a day-old record on.
        return check(name, "ok", evidence if previous["bytes"] <= 0 else
                     evidence + "; growth judged against a record >= 1 day old")
    weekly = 100.0 * delta / previous["bytes"] * (7.0 / days) if days > 0 else 0.0
    evidence += ", %.1f%% a week" % weekly
    if weekly > t["s3_growth_percent"]:
        return check(name, "warn", "%s (> %.0f%%)" % (evidence, t["s3_growth_percent"]),
                     "growth above plan: check compaction/downsampling and retention of the"
                     " bucket, and for new tenants or high-cardinality series")
    return check(name, "ok", evidence)


def evaluate_tsdb(samples, url, thresholds):
    """A full Prometheus server's TSDB from its /metrics: blocks bytes, head series, WAL,
    against its own size retention when it has one."""
    name = "prometheus tsdb %s" % url
    blocks = _value(samples, "prometheus_tsdb_storage_blocks_bytes")
    if blocks is None:
        return check(name, "fail", "%s/metrics has no prometheus_tsdb_storage_blocks_bytes" % url,
                     "is this a Prometheus server (not an agent)? check wk_prometheus_url")
    series = _value(samples, "prometheus_tsdb_head_series")
    limit = _value(samples, "prometheus_tsdb_retention_limit_bytes") or 0
    wal = _value(samples, "prometheus_tsdb_wal_storage_size_bytes")
    evidence = "blocks %s, head series %s" % (human_bytes(blocks),
                                              "n/a" if series is None else "%d" % series)
    if wal is not None:
        evidence += ", WAL %s" % human_bytes(wal)
    if limit > 0:
        used = 100.0 * blocks / limit
        evidence += ", %.0f%% of the size retention %s" % (used, human_bytes(limit))
        if used >= 90:
            return check(name, "warn", evidence, "size retention is about to delete the oldest"
                         " blocks early: grow the volume or lower --storage.tsdb.retention.time")
    return check(name, "ok", evidence)


def evaluate_alerts(alerts, now, thresholds, week_seconds=7 * 86400):
    """Alertmanager's alerts (API v2): what fired this week, and alerts firing for longer
    than the threshold (persistent alerts nobody fixes, or that should be silenced).
    `alerts` = [{name, state, starts_at (epoch s), labels}]."""
    t = thresholds_with_defaults(thresholds)
    name = "alertmanager alerts"
    week = [a for a in alerts if a["starts_at"] >= now - week_seconds]
    active = [a for a in alerts if a["state"] == "active"]
    names = sorted({a["name"] for a in week})
    evidence = "%d alert(s) known, %d started this week (%s), %d active" % (
        len(alerts), len(week), ", ".join(names[:10]) or "none", len(active))
    limit = t["alert_firing_hours"] * 3600
    long_firing = sorted({a["name"] for a in active
                          if now - a["starts_at"] > limit
                          and a["labels"].get("severity") not in ("none", "info")})
    if long_firing:
        return check(name, "warn", "%s; firing > %.0f h: %s" % (
            evidence, t["alert_firing_hours"], ", ".join(long_firing)),
            "fix the cause or silence it with an owner and an expiry")
    return check(name, "ok", evidence)


def evaluate_wal(what, size_bytes, thresholds):
    """A WAL directory's size against the threshold (the agent's is its unsent buffer)."""
    t = thresholds_with_defaults(thresholds)
    name = "wal %s" % what
    if size_bytes is None:
        return skipped(name, "WAL size unknown")
    evidence = "%s on disk" % human_bytes(size_bytes)
    if size_bytes > t["wal_bytes"]:
        return check(name, "warn", "%s (> %s)" % (evidence, human_bytes(t["wal_bytes"])),
                     "a growing WAL means remote write falls behind or truncation fails:"
                     " check lag and prometheus_tsdb_wal_truncations_failed_total")
    return check(name, "ok", evidence)


def evaluate_index_cleanup(decisions, pattern, retention_days):
    """Log indices older than the retention that are still present (from
    log_indices.select_old_indices)."""
    name = "log index cleanup %s" % pattern
    overdue = [d for d in decisions if d["action"] == "delete"]
    evidence = "%d index(es) match, retention %s day(s)" % (len(decisions), _num(retention_days))
    if overdue:
        shown = ", ".join(d["index"] for d in overdue[:5])
        more = " (+%d more)" % (len(overdue) - 5) if len(overdue) > 5 else ""
        return check(name, "warn", "%s; %d older than the retention still present: %s%s" % (
            evidence, len(overdue), shown, more),
            "cleanup is not running or failing: `watchkeeper run cleanup-log-indices -e"
            " older_than_days=%s --check`" % _num(retention_days))
    return check(name, "ok", evidence + "; none overdue")


# --------------------------------------------------------------------------- monthly

_VERSION = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def parse_version(text):
    """(major, minor, patch) from a version string such as v0.40.1, 2.42.0+ds or 1.36;
    None when it has no leading number."""
    match = _VERSION.match(str(text).strip())
    if not match:
        return None
    return tuple(int(g) if g is not None else 0 for g in match.groups())


def compare_version(component, running, latest):
    """One component's running version against the latest known."""
    name = "version %s" % component
    have, want = parse_version(running), parse_version(latest)
    if have is None or want is None:
        return skipped(name, "cannot compare %r with latest known %r" % (running, latest))
    evidence = "running %s, latest known %s" % (running, latest)
    if have >= want:
        return check(name, "ok", evidence)
    if have[0] < want[0]:
        return check(name, "warn", evidence + " (a major version behind)",
                     "plan the major upgrade: read the release notes' breaking changes")
    if have[1] < want[1]:
        return check(name, "warn", evidence + " (%d minor version(s) behind)" % (want[1] - have[1]),
                     "upgrade through GitOps (chart or image tag), one minor at a time")
    return check(name, "warn", evidence + " (patch release available)",
                 "apply the patch release: patch releases carry bug and security fixes")


def evaluate_versions(running, latest):
    """Every running component (wk_versions and images) against the latest known table."""
    if not running:
        return [skipped("versions", "the inventory sets no wk_versions and no image was read")]
    if not latest:
        return [skipped("versions", "no latest-known table: set wk_versions_latest or"
                        " wk_versions_latest_file")]
    out = []
    for component in sorted(running):
        if component in latest:
            out.append(compare_version(component, running[component], latest[component]))
    unknown = sorted(c for c in running if c not in latest)
    if unknown:
        out.append(skipped("versions without a latest known",
                           "no latest known for: %s" % ", ".join(unknown)))
    return out


def evaluate_chart(row):
    """One Helm chart an Application deploys against the newest in its chart repository.
    `row`: application, chart, version, newest (None: not in the index), app_version,
    newest_app_version, notes (the release notes' breaking changes between the two app
    versions, as text), error."""
    name = "chart %s (%s)" % (row["chart"], row["application"])
    if row.get("error"):
        return skipped(name, row["error"])
    have, want = parse_version(row["version"]), parse_version(row.get("newest") or "")
    if want is None:
        return check(name, "warn", "chart version %s; the repository's index has no %s" % (
            row["version"], row["chart"]), "check the helmCharts repo URL and chart name")
    evidence = "chart %s, newest %s" % (row["version"], row["newest"])
    if have is not None and have >= want:
        return check(name, "ok", evidence)
    if row.get("app_version") or row.get("newest_app_version"):
        evidence += " (app %s -> %s)" % (row.get("app_version") or "?",
                                         row.get("newest_app_version") or "?")
    if row.get("notes"):
        evidence += "; breaking changes: " + "; ".join(row["notes"])
    return check(name, "warn", evidence,
                 "watchkeeper run upgrade-chart -e application=%s -e version=%s --check" % (
                     row["application"], row["newest"]))


def evaluate_patches(running, latest):
    """Security patch status, as far as versions tell: a newer patch release of the running
    minor is a missing fix. No vulnerability feed is consulted, so a component at the latest
    known patch is `ok` only with respect to that table."""
    name = "security patches"
    if not running or not latest:
        return skipped(name, "cannot be determined: needs wk_versions and a latest-known table"
                       " (no vulnerability feed is configured)")
    missing, compared = [], 0
    for component, version in sorted(running.items()):
        have, want = parse_version(version), parse_version(latest.get(component, ""))
        if have is None or want is None:
            continue
        compared += 1
        if have[:2] == want[:2] and have[2] < want[2]:
            missing.append("%s %s -> %s" % (component, version, latest[component]))
    if not compared:
        return skipped(name, "no running component has a latest known version to compare")
    if missing:
        return check(name, "warn", "patch releases not applied: %s" % "; ".join(missing),
                     "patch releases carry security fixes: roll them out through GitOps")
    return check(name, "ok", "%d component(s) at the latest known patch of their minor"
                 " (versions only; no vulnerability feed consulted)" % compared)


def evaluate_resources(memory, cpu, thresholds):
    """Resource usage from Thanos Query: per job, resident memory (bytes) and CPU (cores),
    each {job: value}. Names the top consumers; warns above the per-process thresholds."""
    t = thresholds_with_defaults(thresholds)
    name = "resource usage"
    if not memory and not cpu:
        return check(name, "warn", "Query returned no process_resident_memory_bytes nor"
                     " process_cpu_seconds_total", "are the components' own metrics scraped?")
    top = sorted(memory.items(), key=lambda kv: -kv[1])[:5]
    evidence = "memory (max per process): %s; cpu (cores, max per process): %s" % (
        ", ".join("%s %s" % (job, human_bytes(v)) for job, v in top) or "n/a",
        ", ".join("%s %.2f" % (job, v) for job, v in
                  sorted(cpu.items(), key=lambda kv: -kv[1])[:5]) or "n/a")
    over = ["%s memory %s" % (j, human_bytes(v)) for j, v in memory.items()
            if v > t["process_memory_bytes"]]
    over += ["%s cpu %.2f" % (j, v) for j, v in cpu.items() if v > t["process_cpu_cores"]]
    if over:
        return check(name, "warn", "%s; above threshold: %s" % (evidence, ", ".join(sorted(over))),
                     "right-size requests/limits, or shard (more receivers, fewer series)")
    return check(name, "ok", evidence)


def evaluate_backup_age(verified, now, thresholds, source):
    """watchkeeper_backup_last_verified_timestamp_seconds per backup kind ({kind: epoch s}):
    fail when none is recorded or the newest verification of a kind is too old."""
    t = thresholds_with_defaults(thresholds)
    name = "backup verification age"
    limit = t["backup_verified_age_days"]
    if not verified:
        return check(name, "fail", "no watchkeeper_backup_last_verified_timestamp_seconds in %s"
                     % source, "no verified backup is recorded: run the backup runbooks with"
                     " verification and make sure their metrics are scraped")
    ages = {kind: (now - ts) / 86400.0 for kind, ts in verified.items()}
    evidence = ", ".join("%s %.1f day(s) ago" % (k, a) for k, a in sorted(ages.items()))
    stale = sorted(k for k, a in ages.items() if a > limit)
    if stale:
        return check(name, "fail", "%s; older than %s day(s): %s" % (
            evidence, _num(limit), ", ".join(stale)),
            "verify a backup now (a restore drill), then find why verification stopped")
    return check(name, "ok", "last verified: %s (from %s)" % (evidence, source))


# --------------------------------------------------------------------------- helpers


def _value(samples, name):
    series = samples.get(name)
    if not series:
        return None
    return sum(v for _, v in series)


def _num(value):
    return ("%d" % value) if float(value).is_integer() else ("%s" % value)


def verdict(checks, strict=False):
    """(failed, message) over every check of a cluster's checklist: failed when any check
    failed (or warned, when strict)."""
    bad = ("fail", "warn") if strict else ("fail",)
    failing = [c for c in checks if c.get("status") in bad]
    counts = dict((s, sum(1 for c in checks if c.get("status") == s)) for s in STATUSES)
    summary = ", ".join("%d %s" % (counts[s], s) for s in STATUSES if counts[s])
    if failing:
        names = ", ".join(c["name"] for c in failing[:8])
        more = " (+%d more)" % (len(failing) - 8) if len(failing) > 8 else ""
        return True, "worst %s (%s): %s%s" % (worst(checks), summary, names, more)
    return False, "worst %s (%s)" % (worst(checks), summary or "no checks")
