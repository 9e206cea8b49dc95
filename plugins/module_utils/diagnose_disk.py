# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""diagnose disk-space: why a data volume fills, most likely cause first.

Per data volume (the checklist's: wk_data_volume_paths, then the namespace's hostPath / local
PersistentVolumes): usage against the checklist's thresholds, growth over the rate window and
the time left until full, what fills it (the TSDB's WAL, head chunks, blocks, blocks the Thanos
shipper has not uploaded, anything that is not TSDB data), and the cause:

- uploads failing: blocks the shipper (thanos.shipper.json) has not uploaded, older than
  `upload_grace`: a receiver keeps every block until it is in the bucket, so a broken objstore
  fills its volume (score 90; a problem even while the volume has room);
- the filesystem is shared: the volume's directory holds less than half of what the
  filesystem uses, so what the volume holds is not what fills it (78);
- not TSDB data: something else writes to the volume (core dumps, copies, debug dumps; 75);
- WAL: an agent's WAL holds what remote write has not delivered; on a receiver a WAL that
  dominates means the head is not being compacted (70);
- retention: blocks fill the volume: retention longer than the volume holds (60);
- the usage itself (50), so a full volume with no better explanation is still named.

Causes other than uploads failing are reported only when the volume is at warn or fail: a
healthy volume's content is evidence, not a problem. I/O here, the thresholds and the usage
check from checklist.py, so the checklist's disk item and this diagnostic agree.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import os
import re
import time

from ansible_collections.watchkeeper.platform.plugins.module_utils import checklist as cl
from ansible_collections.watchkeeper.platform.plugins.module_utils import checklist_probe as probe
from ansible_collections.watchkeeper.platform.plugins.module_utils.diagnose import finding

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
TSDB_DIRS = ("wal", "chunks_head")


def _bytes(path):
    if os.path.isdir(path) and not os.path.islink(path):
        return probe.directory_bytes(path) or 0
    try:
        return os.lstat(path).st_blocks * 512
    except OSError:
        return 0


def _is_tsdb(path):
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(n in TSDB_DIRS or ULID.match(n) for n in names)


def _uploaded(tsdb):
    """ULIDs the Thanos shipper recorded as uploaded, or None when no shipper runs here."""
    try:
        with open(os.path.join(tsdb, "thanos.shipper.json")) as handle:
            return set(json.load(handle).get("uploaded") or [])
    except (OSError, ValueError):
        return None


def _block_end(block):
    try:
        with open(os.path.join(block, "meta.json")) as handle:
            return float(json.load(handle)["maxTime"]) / 1000.0
    except (OSError, ValueError, KeyError, TypeError):
        return None


def breakdown(volume, now=None):
    """What fills `volume`: {wal, chunks_head, blocks, block_bytes, unshipped: [(ulid, bytes,
    end)], shipper, other: [(name, bytes)], tsdbs: [paths]} (bytes allocated). A TSDB is the
    volume itself or a directory below it (a receiver's tenants)."""
    now = time.time() if now is None else now
    found = {"wal": 0, "chunks_head": 0, "blocks": 0, "block_bytes": 0, "unshipped": [],
             "shipper": False, "other": [], "tsdbs": []}
    roots = [volume] if _is_tsdb(volume) else []
    try:
        entries = sorted(os.listdir(volume))
    except OSError:
        return found
    if not roots:
        for name in entries:
            path = os.path.join(volume, name)
            if os.path.isdir(path) and _is_tsdb(path):
                roots.append(path)
            else:
                found["other"].append((name, _bytes(path)))
    for tsdb in roots:
        found["tsdbs"].append(tsdb)
        uploaded = _uploaded(tsdb)
        found["shipper"] = found["shipper"] or uploaded is not None
        for name in sorted(os.listdir(tsdb)):
            path = os.path.join(tsdb, name)
            size = _bytes(path)
            if name in TSDB_DIRS:
                found[name] += size
            elif ULID.match(name) and os.path.isdir(path):
                found["blocks"] += 1
                found["block_bytes"] += size
                if uploaded is not None and name not in uploaded:
                    found["unshipped"].append((name, size, _block_end(path)))
            elif tsdb == volume and name not in ("lock", "queries.active", "thanos.shipper.json"):
                found["other"].append((name, size))
    found["other"].sort(key=lambda item: -item[1])
    return found


def consumers_text(parts):
    """'wal 3.1 MiB, blocks (26) 610 KiB, ...', biggest first."""
    items = [("wal", parts["wal"]), ("chunks_head", parts["chunks_head"]),
             ("blocks (%d)" % parts["blocks"], parts["block_bytes"])]
    items += [(name, size) for name, size in parts["other"][:3]]
    items = sorted((i for i in items if i[1]), key=lambda i: -i[1])
    return ", ".join("%s %s" % (name, cl.human_bytes(size)) for name, size in items) or "nothing"


def _age(seconds):
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 172800:
        return "%.1f h" % (seconds / 3600.0)
    return "%.0f d" % (seconds / 86400.0)


def volume_findings(path, source, usage, parts, growth, thresholds, upload_grace, now):
    """The findings of one volume. `usage` as checklist_probe.disk_usage, `parts` as
    breakdown(), `growth` bytes per second over the window (None when not measured)."""
    base = cl.evaluate_disk(path, usage, thresholds)
    name = "disk %s" % path
    if base["status"] == "skipped":
        return [dict(finding("volume_unreadable", name, "skipped", base["evidence"]),
                     hint=base.get("hint", ""))]
    evidence = "%s [%s]; holds: %s" % (base["evidence"], source, consumers_text(parts))
    if growth is not None:
        evidence += "; growing %s/min" % cl.human_bytes(max(0.0, growth) * 60)
        if growth > 0 and usage.get("available"):
            evidence += ", full in ~%s" % _age(usage["available"] / growth)
    status = base["status"]
    found = [finding("volume_usage", name, status, evidence, hint=base.get("hint") or "",
                     score=50)]
    used = usage.get("directory_bytes") or sum(
        [parts["wal"], parts["chunks_head"], parts["block_bytes"]]
        + [s for _, s in parts["other"]]) or 1

    late = [(u, s, end) for u, s, end in parts["unshipped"]
            if end is not None and now - end > upload_grace]
    if late:
        oldest = max(now - end for _, _, end in late)
        found.append(finding(
            "uploads_failing", "uploads %s" % path, "fail" if status == "fail" else "warn",
            "%d block(s) not uploaded by the shipper (%s), the oldest ended %s ago (grace %s);"
            " a receiver keeps each block until it is in the bucket" % (
                len(late), cl.human_bytes(sum(s for _, s, _ in late)), _age(oldest),
                _age(upload_grace)),
            hint="uploads to object storage fail: check the receiver's objstore config and the"
                 " bucket (`watchkeeper logs receive --grep shipper`, backup-bucket's checks);"
                 " the volume fills until they succeed", score=90))
    if status not in ("warn", "fail"):
        return found
    other = sum(size for _, size in parts["other"])
    if other > used / 2:
        top = ", ".join("%s %s" % (n, cl.human_bytes(s)) for n, s in parts["other"][:3])
        found.append(finding(
            "foreign_data", "not TSDB data %s" % path, status,
            "%s of the volume's %s is not TSDB data: %s" % (
                cl.human_bytes(other), cl.human_bytes(used), top),
            hint="something else writes to this volume (a dump, a copy, a debug file):"
                 " remove it; TSDB data lives in wal/, chunks_head/ and block directories",
            score=75))
    if parts["wal"] > used / 2:
        found.append(finding(
            "wal_growing", "WAL %s" % path, status,
            "the WAL holds %s (%d%% of the volume)" % (
                cl.human_bytes(parts["wal"]), 100 * parts["wal"] // used),
            hint="an agent's WAL keeps what remote write has not delivered: run"
                 " diagnose-remote-write; on a receiver the head is not compacting: read its"
                 " log", score=70))
    fs_used = usage.get("used") or 0
    if usage.get("directory_bytes") is not None and fs_used and \
            usage["directory_bytes"] < fs_used / 2:
        found.append(finding(
            "shared_filesystem", "shared filesystem %s" % path, status,
            "the volume holds %s of the %s used on %s" % (
                cl.human_bytes(usage["directory_bytes"]), cl.human_bytes(fs_used),
                usage.get("mount") or "its filesystem"),
            hint="other data shares this filesystem: give the volume its own (a PVC)",
            score=78))
    if parts["block_bytes"] > used / 2 and not late:
        found.append(finding(
            "retention", "retention %s" % path, status,
            "%d blocks hold %s (%d%% of the volume)" % (
                parts["blocks"], cl.human_bytes(parts["block_bytes"]),
                100 * parts["block_bytes"] // used),
            hint="retention is longer than the volume holds: shorten --tsdb.retention or grow"
                 " the PVC", score=60))
    return found


def disk_space(params, kube, sleep=time.sleep):
    """Findings for every data volume of the cluster (unranked)."""
    volumes = probe.data_volumes(params, kube)
    if not volumes:
        return [finding("no_volume", "disk", "skipped",
                        "no data volume known: set wk_data_volume_paths, or wk_kube_context to"
                        " discover hostPath/local PersistentVolumes")]
    # Growth of what the volume's directory holds (its filesystem may be shared).
    first = dict((path, probe.directory_bytes(path)) for path in volumes if os.path.isdir(path))
    started = time.time()
    sleep(float(params["rate_window"]))
    elapsed = max(0.001, time.time() - started)
    now = time.time()
    findings = []
    for path in sorted(volumes):
        usage = probe.disk_usage(path)
        growth = None
        if first.get(path) is not None and usage.get("directory_bytes") is not None:
            growth = (usage["directory_bytes"] - first[path]) / elapsed
        findings.extend(volume_findings(path, volumes[path], usage, breakdown(path, now),
                                        growth, params.get("thresholds") or {},
                                        float(params["upload_grace"]), now))
    return findings
