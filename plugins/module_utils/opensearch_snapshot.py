# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure logic of OpenSearch snapshots: names, the verdict on a finished snapshot, retention
selection, index renaming for restores and document-count comparison. No I/O: table-tested in
tests/unit/test_opensearch_logic.py; the modules do the calls.

Snapshots are dicts as `GET _snapshot/<repo>/_all` returns them (`snapshot`, `state`,
`start_time_in_millis`, `shards`, `indices`, `failures`, `metadata`).
"""

from __future__ import absolute_import, annotations, division, print_function

import fnmatch
import re

SUCCESS = "SUCCESS"
IN_PROGRESS = "IN_PROGRESS"
DAY_MS = 86400 * 1000

#: Characters OpenSearch refuses in index and snapshot names (besides upper case).
_BAD_NAME_CHARS = set('\\/*?"<>| ,#:')


def name_problem(name, what="name"):
    """Why `name` is not a valid snapshot / repository / index name, or ''."""
    if not name:
        return "%s is empty" % what
    if name != name.lower():
        return "%s %r has upper-case letters (OpenSearch names are lower case)" % (what, name)
    if name[0] in "-_+":
        return "%s %r starts with %r" % (what, name, name[0])
    bad = sorted(set(name) & _BAD_NAME_CHARS)
    if bad:
        return "%s %r contains %s" % (what, name, " ".join(repr(c) for c in bad))
    if len(name.encode("utf-8")) > 255:
        return "%s is longer than 255 bytes" % what
    return ""


def pattern_problem(pattern, what="index pattern"):
    """Why `pattern` is not a safe index pattern for a runbook, or ''.

    A runbook never acts on every index: the pattern must start with a literal, must not
    address system or hidden indices, and must be one pattern (no commas, no exclusions).
    """
    if not pattern or not pattern.strip():
        return "%s is empty" % what
    if pattern in ("*", "_all") or pattern[0] in "*?":
        return "%s %r would match every index; start it with a literal prefix such as logs-" % (
            what, pattern)
    if pattern[0] in ".-_+":
        return "%s %r starts with %r (system, hidden or excluded indices)" % (
            what, pattern, pattern[0])
    if pattern != pattern.lower():
        return "%s %r has upper-case letters (index names are lower case)" % (what, pattern)
    bad = sorted(set(pattern) & (_BAD_NAME_CHARS - {"*"}))
    if bad:
        return "%s %r contains %s; give one pattern per list item" % (
            what, pattern, " ".join(repr(c) for c in bad))
    return ""


def snapshot_name(prefix, run_id):
    """The snapshot of one run: the prefix plus the run id, lower case as OpenSearch requires."""
    return (prefix + run_id).lower()


def matches_any(name, patterns):
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# --------------------------------------------------------------------------- verdict


def shard_failures(snapshot):
    """'index[shard]: reason' for every failed shard of a snapshot."""
    out = []
    for failure in snapshot.get("failures") or []:
        out.append("%s[%s]: %s" % (failure.get("index", "?"), failure.get("shard_id", "?"),
                                   failure.get("reason", "?")))
    return out


def verdict(snapshot):
    """Checks on a finished snapshot: state SUCCESS and every shard successful.

    A PARTIAL or FAILED snapshot is not a backup one can trust: both checks fail, and the
    evidence names the failed shards.
    """
    name = snapshot.get("snapshot", "?")
    state = snapshot.get("state", "?")
    shards = snapshot.get("shards") or {}
    total = int(shards.get("total", 0))
    successful = int(shards.get("successful", 0))
    failed = int(shards.get("failed", 0))
    failures = shard_failures(snapshot)
    hint = ""
    if state != SUCCESS:
        hint = ("fix the failed shards (GET _cluster/allocation/explain for unassigned"
                " primaries) and run the backup again; this snapshot is not a backup")
    checks = [
        {"name": "snapshot state", "status": "ok" if state == SUCCESS else "fail",
         "evidence": "%s: %s" % (name, state)
         + (" (%s)" % snapshot["reason"] if snapshot.get("reason") else ""),
         "hint": hint},
    ]
    shards_ok = total > 0 and successful == total and failed == 0
    evidence = "%d/%d shards successful, %d failed" % (successful, total, failed)
    if failures:
        evidence += ": " + "; ".join(failures[:5]) + (" ..." if len(failures) > 5 else "")
    checks.append({"name": "snapshot shards", "status": "ok" if shards_ok else "fail",
                   "evidence": evidence,
                   "hint": "" if shards_ok else (
                       hint or "a snapshot of no shard backs up nothing")})
    return checks


# --------------------------------------------------------------------------- retention


def _start(snapshot):
    return int(snapshot.get("start_time_in_millis") or 0)


def newest_first(snapshots):
    return sorted(snapshots, key=lambda s: (_start(s), s.get("snapshot", "")), reverse=True)


def newest_successful(snapshots):
    """The newest snapshot with state SUCCESS, or None."""
    for snapshot in newest_first(snapshots):
        if snapshot.get("state") == SUCCESS:
            return snapshot
    return None


def select_retention(snapshots, now_ms, prefix, max_age_days=None, max_count=None, min_count=1):
    """Decide, for each snapshot, keep or delete. Returns [{snapshot, state, age_days, action,
    reason}] newest first; action is `keep` or `delete`.

    Only snapshots whose name starts with `prefix` (the ones this runbook takes) are candidates;
    others are never deleted. A snapshot is deleted when it is older than `max_age_days` or
    beyond the newest `max_count`, except: the newest SUCCESS snapshot and the newest
    `min_count` SUCCESS snapshots are always kept, and a snapshot still running is never touched.
    Failed and partial snapshots count towards max_count but never towards min_count.
    """
    min_count = max(int(min_count or 0), 1)  # the newest successful one is never deleted
    ours = [s for s in snapshots if str(s.get("snapshot", "")).startswith(prefix)]
    decisions = []
    successful_seen = 0
    position = 0
    for snapshot in newest_first(ours):
        name, state = snapshot.get("snapshot"), snapshot.get("state")
        age_days = max(now_ms - _start(snapshot), 0) / float(DAY_MS)
        entry = {"snapshot": name, "state": state, "age_days": round(age_days, 3)}
        if state == IN_PROGRESS:
            entry.update(action="keep", reason="still running")
            decisions.append(entry)
            continue
        position += 1
        why = []
        if max_age_days is not None and age_days > float(max_age_days):
            why.append("older than max_age_days=%s (%.2f days)" % (max_age_days, age_days))
        if max_count is not None and position > int(max_count):
            why.append("beyond max_count=%d (number %d)" % (int(max_count), position))
        protected = ""
        if state == SUCCESS:
            successful_seen += 1
            if successful_seen == 1:
                protected = "newest successful snapshot"
            elif successful_seen <= min_count:
                protected = "one of the newest min_count=%d successful snapshots" % min_count
        if why and not protected:
            entry.update(action="delete", reason="; ".join(why))
        elif why:
            entry.update(action="keep", reason="%s (although %s)" % (protected, "; ".join(why)))
        else:
            entry.update(action="keep", reason=protected or "within the retention limits")
        decisions.append(entry)
    return decisions


# --------------------------------------------------------------------------- restore


_JAVA_GROUP = re.compile(r"\\\$|\$\{(\w+)\}|\$(\d+)")


def python_replacement(replacement):
    """OpenSearch's rename_replacement (Java `$1`, `${name}`) as a re.sub template."""
    def repl(match):
        if match.group(0) == "\\$":
            return "$"
        return "\\g<%s>" % (match.group(1) or match.group(2))

    escaped = replacement.replace("\\", "\\\\").replace("\\\\$", "\\$")
    return _JAVA_GROUP.sub(repl, escaped)


def renamed(indices, rename_pattern, rename_replacement):
    """{source index: restored index name}, as OpenSearch's restore computes it
    (String.replaceAll of the pattern by the replacement). Raises ValueError on a bad pattern."""
    try:
        # Java writes named groups (?<name>...), Python (?P<name>...); lookbehinds are alike.
        regex = re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", rename_pattern))
    except re.error as exc:
        raise ValueError("rename_pattern %r is not a regular expression: %s"
                         % (rename_pattern, exc)) from exc
    template = python_replacement(rename_replacement)
    out = {}
    for index in indices:
        try:
            out[index] = regex.sub(template, index)
        except (re.error, IndexError) as exc:
            raise ValueError("rename_replacement %r does not fit rename_pattern %r: %s"
                             % (rename_replacement, rename_pattern, exc)) from exc
    return out


def rename_problems(mapping, snapshot_indices):
    """Why a rename is unsafe: a target equal to a source (the restore would overwrite an index
    the snapshot holds), two sources onto one target, or an invalid name."""
    problems = []
    sources = set(snapshot_indices)
    seen = {}
    for source, target in sorted(mapping.items()):
        if target in sources:
            problems.append("%s would be restored as %s, an index of the snapshot itself: set"
                            " rename_replacement so restored indices get new names"
                            % (source, target))
        bad = name_problem(target, "restored index name")
        if bad:
            problems.append("%s -> %s: %s" % (source, target, bad))
        if target in seen:
            problems.append("%s and %s would both be restored as %s" % (seen[target], source,
                                                                       target))
        seen[target] = source
    return problems


def count_checks(expected, restored, source_label):
    """Checks comparing document counts: expected {source: count}, restored {source: (target,
    count)}. Only equal counts are ok; `source_label` says where the expectation came from
    (the counts the backup recorded in the snapshot's metadata, or the live index)."""
    checks = []
    for source in sorted(restored):
        target, got = restored[source]
        want = expected.get(source)
        name = "document count %s" % target
        if want is None:
            checks.append({"name": name, "status": "fail",
                           "evidence": "%s: %d documents; no %s count for %s"
                           % (target, got, source_label, source),
                           "hint": "restore with -e compare_with=live to compare with the live"
                                   " index"})
        elif got == want:
            checks.append({"name": name, "status": "ok",
                           "evidence": "%s: %d documents = %s %s" % (target, got, source_label,
                                                                     source)})
        else:
            checks.append({"name": name, "status": "fail",
                           "evidence": "%s: %d documents, %s %s has %d (%+d)"
                           % (target, got, source_label, source, want, got - want),
                           "hint": "the restored index does not hold what the source held;"
                                   " do not rely on this snapshot"})
    return checks
