# -*- coding: utf-8 -*-
"""DR drills: the measures (RTO, RPO, integrity), judged from the timestamps the fault, the
recovery and the probes recorded, and the drill document (drill.json).

RTO: fault injected -> the first successful read of what was lost (for opensearch-loss, the
first successful search of the restored indices). RPO: fault time minus the newest point the
recovery brought back (for opensearch-loss, the snapshot's end time). Integrity: the counts the
recovery restored equal those recorded at backup time.
"""

from __future__ import absolute_import, annotations, division, print_function

import datetime
import json
import os

#: Stages of a drill's timeline, in the order they happen.
STAGES = ("fault_injected", "detected", "recovery_started", "component_ready", "caught_up")

def human(seconds):
    """'1h 02m 03s', '4m 05s', '12.3 s' for a report."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return "%.1f s" % seconds
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh %02dm %02ds" % (hours, minutes, secs)
    return "%dm %02ds" % (minutes, secs)


def iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def measure(scenario, timeline, rpo_point, integrity, targets):
    """The drill's verdict: {"checks": [...], "rto", "rpo", "passed", "failed_first"}.

    timeline: {stage: epoch} (fault_injected and caught_up needed for RTO); rpo_point: the
    epoch of the newest point the recovery brought back (None: nothing came back);
    integrity: [(name, ok, evidence)]; targets: {"rto": s, "rpo": s}. A failed measure
    comes first in `checks`, RTO before RPO before integrity."""
    fault = timeline.get("fault_injected")
    back = timeline.get("caught_up")
    rto = (back - fault) if fault is not None and back is not None else None
    rpo = (fault - rpo_point) if fault is not None and rpo_point is not None else None
    checks = []

    def judge(name, value, target, what):
        if value is None:
            checks.append({"name": "%s %s" % (scenario, name), "status": "fail",
                           "evidence": "%s not measured: %s" % (name, what),
                           "hint": "read the drill's timeline in drill.json"})
            return
        ok = value <= target
        checks.append({"name": "%s %s" % (scenario, name), "status": "ok" if ok else "fail",
                       "evidence": "%s %s %s target %s (%s)" % (
                           name, human(value), "<=" if ok else ">", human(target), what),
                       "hint": "" if ok else (
                           "recovery is slower than the objective: see each stage's time in"
                           " drill.json" if name == "RTO" else
                           "back up more often (the newest backup is older than the"
                           " objective allows)")})

    judge("RTO", rto, targets["rto"], "fault injected -> first successful read after recovery")
    judge("RPO", rpo, targets["rpo"], "fault time - newest point recovered")
    for name, ok, evidence in integrity:
        checks.append({"name": "%s integrity %s" % (scenario, name),
                       "status": "ok" if ok else "fail", "evidence": evidence,
                       "hint": "" if ok else "the recovery did not bring back what the backup"
                       " held: do not rely on this backup"})
    if not integrity:
        checks.append({"name": "%s integrity" % scenario, "status": "fail",
                       "evidence": "nothing was compared", "hint": "the recovery restored"
                       " nothing: read the recovery step"})
    failed = [c for c in checks if c["status"] == "fail"]
    checks = failed + [c for c in checks if c["status"] != "fail"]
    return {"checks": checks, "rto": rto, "rpo": rpo, "passed": not failed,
            "failed_first": failed[0]["name"] if failed else ""}


def stage_times(timeline):
    """Each stage's seconds since the fault, in order ({stage: seconds})."""
    fault = timeline.get("fault_injected")
    if fault is None:
        return {}
    return {stage: round(timeline[stage] - fault, 3) for stage in STAGES
            if timeline.get(stage) is not None}


def document(drill_id, scenario, targets, verdict, timeline, evidence):
    """One scenario's entry of drill.json."""
    return {
        "drill_id": drill_id, "scenario": scenario,
        "targets": {"rto_seconds": targets["rto"], "rpo_seconds": targets["rpo"]},
        "rto_seconds": None if verdict["rto"] is None else round(verdict["rto"], 3),
        "rpo_seconds": None if verdict["rpo"] is None else round(verdict["rpo"], 3),
        "passed": verdict["passed"], "failed_first": verdict["failed_first"],
        "timeline": {stage: iso(timeline[stage]) for stage in STAGES
                     if timeline.get(stage) is not None},
        "stage_seconds": stage_times(timeline),
        "checks": verdict["checks"], "evidence": evidence,
    }


def write_json(path, data):
    """Write `data` as JSON, atomically (a reader never sees half a file)."""
    partial = path + ".partial"
    with open(partial, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(partial, path)


def append(path, entry):
    """Add one scenario's entry to drill.json (created on the first), written atomically."""
    drill = {"drill_id": entry["drill_id"], "scenarios": []}
    if os.path.isfile(path):
        with open(path) as handle:
            drill = json.load(handle)
    drill["scenarios"] = [s for s in drill.get("scenarios", [])
                          if s["scenario"] != entry["scenario"]] + [entry]
    drill["passed"] = all(s["passed"] for s in drill["scenarios"])
    write_json(path, drill)
    return drill
