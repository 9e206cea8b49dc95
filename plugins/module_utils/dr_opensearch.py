# -*- coding: utf-8 -*-
"""The opensearch-loss drill: log indices are deleted and restored from the newest snapshot.

plan: the indices it destroys (those matching the patterns that exist *and* are in the
snapshot: a drill never destroys what its backup cannot bring back), the snapshot it restores
from and its age. inject: deletes exactly the planned indices and times the fault and its
detection (the first failed search). measure: the first successful search of the restored
indices (RTO), the snapshot's end time (RPO), and the restored document counts against the
counts the backup recorded (integrity).
"""

from __future__ import absolute_import, annotations, division, print_function

import time

from ansible_collections.watchkeeper.platform.plugins.module_utils import dr
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    OpenSearchFailure,
    call,
    not_found,
    pick_snapshot,
)


def _existing(client, patterns):
    """Names of the live indices matching the patterns (hidden ones excluded)."""
    found = call("GET %s" % ",".join(patterns), client.indices.get,
                 index=",".join(patterns), ignore_unavailable=True, allow_no_indices=True)
    return sorted(n for n in found if not n.startswith("."))


def _count(client, index):
    call("POST %s/_refresh" % index, client.indices.refresh, index=index)
    return int(call("GET %s/_count" % index, client.count, index=index)["count"])


def plan(client, params):
    repository = params["repository"]
    chosen = pick_snapshot(client, repository, params.get("snapshot") or "")
    manifest = (chosen.get("metadata") or {}).get("manifest_index")
    in_snapshot = set(i for i in chosen.get("indices") or []
                      if not i.startswith(".") and i != manifest)
    live = _existing(client, params["indices"])
    destroys = [i for i in live if i in in_snapshot]
    left_alone = [i for i in live if i not in in_snapshot]
    if not destroys:
        raise OpenSearchFailure(
            "nothing to destroy: no live index matching %s is in snapshot %s/%s (it holds: %s)"
            % (", ".join(params["indices"]), repository, chosen["snapshot"],
               ", ".join(sorted(in_snapshot)) or "none"),
            "run backup-opensearch first, or set -e indices=PATTERN to indices it holds")
    end = (chosen.get("end_time_in_millis") or 0) / 1000.0 or None
    counts = {i: _count(client, i) for i in destroys}
    snapshot = {"repository": repository, "snapshot": chosen["snapshot"],
                "end_time": chosen.get("end_time"), "end_epoch": end,
                "age_seconds": round(time.time() - end, 1) if end else None}
    msg = "deletes %d index(es) (%s; %d documents), restores them in place from %s/%s" % (
        len(destroys), ", ".join(destroys), sum(counts.values()), repository,
        chosen["snapshot"])
    if end:
        msg += " (taken %s ago, ended %s)" % (dr.human(snapshot["age_seconds"]),
                                              chosen.get("end_time"))
    if left_alone:
        msg += "; left alone, not in the snapshot: %s" % ", ".join(left_alone)
    return {"changed": False, "destroys": destroys, "counts": counts, "snapshot": snapshot,
            "left_alone": left_alone, "msg": msg}


def _search_fails(client, names):
    try:
        call("GET %s/_search" % names, client.search, index=names, body={"size": 0})
    except OpenSearchFailure as exc:
        if not_found(exc):
            return True
        raise
    return False


def inject(client, params, planned):
    """Delete exactly the planned indices; the fault's and its detection's epochs. The plan is
    written to `record_file` first: the drill's recovery (its rollback too) restores what it
    names, and nothing else."""
    destroys = list(planned.get("destroys") or [])
    if not destroys:
        raise OpenSearchFailure("the plan names no index to destroy", "run the plan step first")
    for index in destroys:  # names only: a pattern never reaches a DELETE
        if any(ch in index for ch in "*?,"):
            raise OpenSearchFailure("refusing to delete %r: not one index name" % index)
    if params.get("record_file"):
        dr.write_json(params["record_file"], {
            "scenario": "opensearch-loss", "destroys": destroys,
            "snapshot": planned.get("snapshot"), "counts": planned.get("counts"),
            "recorded": dr.iso(time.time())})
    names = ",".join(destroys)
    injected = time.time()
    call("DELETE %s" % names, client.indices.delete, index=names)
    detected = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _search_fails(client, names):
            detected = time.time()
            break
        time.sleep(0.2)
    return {"changed": True, "destroyed": destroys, "fault_injected": injected,
            "detected": detected, "counts_at_fault": planned.get("counts") or {},
            "msg": "deleted %d index(es): %s; searches fail since %s" % (
                len(destroys), names, dr.iso(detected) if detected else "never (!)")}


def _first_search(client, names, expected, timeout):
    """Epoch of the first search of `names` that succeeds with `expected` hits, or None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = call("GET %s/_search" % names, client.search, index=names,
                         body={"size": 0, "track_total_hits": True})
            hits = found.get("hits", {}).get("total", {})
            total = hits.get("value") if isinstance(hits, dict) else hits
            if total == expected:
                return time.time()
        except OpenSearchFailure as exc:
            if not not_found(exc):
                raise
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def measure(client, params):
    """(verdict, drill entry): RTO, RPO and integrity of one opensearch-loss drill."""
    fault, recovery = params["fault"], params["recovery"]
    destroyed = fault.get("destroyed") or []
    counts = recovery.get("counts") or {}
    restored_docs = sum(int(c.get("restored") or 0) for c in counts.values())
    caught_up = _first_search(client, ",".join(destroyed), restored_docs,
                              float(params["timeout"])) if destroyed else None
    timing = recovery.get("timing") or {}
    timeline = {"fault_injected": fault.get("fault_injected"), "detected": fault.get("detected"),
                "recovery_started": timing.get("requested"),
                "component_ready": timing.get("primaries_active"), "caught_up": caught_up}
    end_ms = (recovery.get("snapshot") or {}).get("end_time_in_millis")
    at_fault = fault.get("counts_at_fault") or {}
    integrity = []
    for index in destroyed:
        entry = counts.get(index)
        if entry is None:
            integrity.append((index, False, "%s was not restored" % index))
            continue
        got, want = int(entry.get("restored") or 0), entry.get("expected")
        lost = int(at_fault.get(index, got)) - got
        evidence = "%s: %d documents restored, the backup recorded %s" % (index, got, want)
        if lost > 0:
            evidence += "; %d written after the snapshot are lost (within the RPO)" % lost
        integrity.append((index, want is not None and got == int(want), evidence))
    targets = {"rto": float(params["rto_target"]), "rpo": float(params["rpo_target"])}
    verdict = dr.measure("opensearch-loss", timeline, end_ms / 1000.0 if end_ms else None,
                         integrity, targets)
    evidence = {"indices": destroyed, "snapshot": recovery.get("snapshot"),
                "documents_at_fault": at_fault,
                "documents_restored": {i: c.get("restored") for i, c in counts.items()}}
    entry = dr.document(params["drill_id"], "opensearch-loss", targets, verdict, timeline,
                        evidence)
    return verdict, entry
