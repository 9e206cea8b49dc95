#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: opensearch_restore
short_description: Restore an OpenSearch snapshot into renamed indices and compare document counts
description:
  - Picks the snapshot (I(snapshot), or the newest C(SUCCESS) one of the repository), maps each
    of its indices to a new name with I(rename_pattern) / I(rename_replacement) exactly as
    OpenSearch will, and refuses before restoring when a new name is one of the snapshot's own
    indices or an index that already exists. Live indices are never overwritten.
  - Restores without global state and without aliases (restored aliases would point readers
    and writers of the live aliases at the restored copies), waits until every restored index
    has its primaries, then counts each restored index's documents and compares them with the
    counts the backup recorded in the snapshot (I(compare_with=snapshot)) or with the live
    source index (I(compare_with=live)). Any difference fails the task.
  - The recorded counts are the snapshot's manifest document, read from the snapshot itself
    by restoring its manifest index under a temporary name (deleted right after), so the
    comparison does not trust the live cluster.
  - Check mode lists the snapshot and the index names it would create, and changes nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  repository:
    description: Snapshot repository.
    type: str
    required: true
  snapshot:
    description: Snapshot to restore; empty means the newest successful one.
    type: str
    default: ""
  indices:
    description: Patterns selecting the snapshot's indices to restore; empty means all of them.
    type: list
    elements: str
    default: []
  rename_pattern:
    description: Regular expression applied to each index name (Java syntax, as OpenSearch).
    type: str
    default: "(.+)"
  rename_replacement:
    description: Replacement, with C($1) for groups.
    type: str
    default: "restored-$1"
  compare_with:
    description: Where the expected document counts come from.
    type: str
    choices: [snapshot, live]
    default: snapshot
  in_place:
    description:
      - Disaster recovery - restore the selected indices of the snapshot that no longer exist,
        under their own names (I(rename_pattern) and I(rename_replacement) are not used). An
        index that exists is left alone and listed in C(kept); none missing is not an error.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the restored indices' primaries.
    type: float
    default: 3600
  poll_interval:
    description: Seconds between two polls.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Restore the newest snapshot as restored-*
  watchkeeper.platform.opensearch_restore:
    url: http://opensearch:9200
    repository: watchkeeper
    rename_replacement: restored-$1
"""

RETURN = r"""
snapshot:
  description: Name, state, start and end time of the restored snapshot.
  type: dict
  returned: always
mapping:
  description: Source index -> restored index.
  type: dict
  returned: always
kept:
  description: With I(in_place), the selected indices that existed and were left alone.
  type: list
  returned: always
timing:
  description: Epoch seconds when the restore was requested, when every restored index had its
    primaries, and when the restored documents were counted.
  type: dict
  returned: when something was restored
counts:
  description: Per source index - restored index, restored documents, expected documents.
  type: dict
  returned: when not in check mode
checks:
  description: One document-count check per restored index.
  type: list
  returned: when not in check mode
"""

import contextlib
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    call,
    connect,
    not_found,
    pick_snapshot,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    count_checks,
    matches_any,
    rename_problems,
    renamed,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    repository=dict(type="str", required=True),
    snapshot=dict(type="str", default=""),
    indices=dict(type="list", elements="str", default=[]),
    rename_pattern=dict(type="str", default="(.+)"),
    rename_replacement=dict(type="str", default="restored-$1"),
    compare_with=dict(type="str", choices=["snapshot", "live"], default="snapshot"),
    in_place=dict(type="bool", default=False),
    wait_timeout=dict(type="float", default=3600.0),
    poll_interval=dict(type="float", default=2.0),
)


def live_counts(client, names):
    existing = [n for n in names if call("HEAD %s" % n, client.indices.exists, index=n)]
    if existing:
        call("POST _refresh", client.indices.refresh, index=",".join(existing))
    return {n: int(call("GET %s/_count" % n, client.count, index=n)["count"]) for n in existing}


def recorded_counts(client, repository, chosen):
    """The document counts the backup recorded: the manifest document of this snapshot, read
    from the snapshot's own copy of the manifest index (restored under a temporary name)."""
    name = chosen["snapshot"]
    metadata = chosen.get("metadata") or {}
    manifest = metadata.get("manifest_index")
    if not manifest or manifest not in (chosen.get("indices") or []):
        raise OpenSearchFailure(
            "snapshot %s holds no manifest of document counts (not taken by"
            " backup-opensearch)" % name, "restore with -e compare_with=live")
    temporary = "wk-manifest-%s" % os.urandom(4).hex()
    try:
        call("POST _snapshot/%s/%s/_restore (manifest)" % (repository, name),
             client.snapshot.restore, repository=repository, snapshot=name,
             body={"indices": manifest, "rename_pattern": ".+", "rename_replacement": temporary,
                   "include_global_state": False, "include_aliases": False},
             wait_for_completion=True)
        document = call("GET %s/_doc/%s" % (temporary, name), client.get, index=temporary,
                        id=name)["_source"]
    except OpenSearchFailure as exc:
        if not_found(exc):
            raise OpenSearchFailure("the manifest in snapshot %s has no document for it" % name,
                                    "restore with -e compare_with=live") from exc
        raise
    finally:
        # never restored (the failure above says why)
        with contextlib.suppress(OpenSearchFailure):
            call("DELETE %s" % temporary, client.indices.delete, index=temporary)
    return {k: int(v) for k, v in (document.get("doc_counts") or {}).items()}, manifest


def wait_for_primaries(client, targets, params):
    """Poll index health until every restored index is yellow or green (primaries active)."""
    deadline = time.monotonic() + params["wait_timeout"]
    started = time.monotonic()
    progress = []
    while True:
        try:
            health = call("GET _cluster/health/%s" % ",".join(targets), client.cluster.health,
                          index=",".join(targets), level="indices")
            statuses = {n: (health.get("indices") or {}).get(n, {}).get("status")
                        for n in targets}
            sample = {"seconds": round(time.monotonic() - started, 1),
                      "active_primary_shards": health.get("active_primary_shards"),
                      "initializing_shards": health.get("initializing_shards"),
                      "unassigned_shards": health.get("unassigned_shards")}
        except OpenSearchFailure as exc:
            if not not_found(exc):
                raise
            statuses = {n: None for n in targets}
            sample = {"seconds": round(time.monotonic() - started, 1), "waiting": "indices"}
        progress.append(sample)
        pending = sorted(n for n, s in statuses.items() if s not in ("green", "yellow"))
        if not pending:
            return progress[-60:]
        if time.monotonic() >= deadline:
            raise OpenSearchFailure(
                "restored indices without active primaries after %.0f s: %s"
                % (params["wait_timeout"], ", ".join(pending)),
                "GET _cluster/allocation/explain says why; the restore may still finish",
                progress=progress[-60:])
        time.sleep(max(params["poll_interval"], 0.2))


def restore(client, params, check_mode):
    repository = params["repository"]
    chosen = pick_snapshot(client, repository, params["snapshot"])
    name = chosen["snapshot"]
    in_snapshot = sorted(chosen.get("indices") or [])
    manifest = (chosen.get("metadata") or {}).get("manifest_index")
    sources = [i for i in in_snapshot if not i.startswith(".") and i != manifest
               and (not params["indices"] or matches_any(i, params["indices"]))]
    if not sources:
        raise OpenSearchFailure("snapshot %s holds no index matching %s (it holds: %s)" % (
            name, ", ".join(params["indices"]) or "*", ", ".join(in_snapshot) or "none"))
    kept = []
    if params["in_place"]:
        # Disaster recovery: the indices that are gone come back under their own names; an
        # index that exists is never touched (OpenSearch would refuse an open one anyway).
        kept = [s for s in sources if call("HEAD %s" % s, client.indices.exists, index=s)]
        sources = [s for s in sources if s not in kept]
        mapping = {s: s for s in sources}
    else:
        try:
            mapping = renamed(sources, params["rename_pattern"], params["rename_replacement"])
        except ValueError as exc:
            raise OpenSearchFailure(str(exc)) from exc
        problems = rename_problems(mapping, in_snapshot)
        if problems:
            raise OpenSearchFailure("unsafe rename: " + "; ".join(problems))
    targets = [mapping[s] for s in sources]
    taken = [] if params["in_place"] else [
        t for t in targets if call("HEAD %s" % t, client.indices.exists, index=t)]
    if taken:
        raise OpenSearchFailure(
            "restored index name(s) already exist: %s" % ", ".join(taken),
            "delete them (DELETE /%s) or choose another -e rename_replacement"
            % ",".join(taken))
    result = {"changed": bool(sources), "mapping": mapping, "kept": kept,
              "snapshot": {k: chosen.get(k) for k in ("snapshot", "state", "start_time",
                                                       "end_time", "end_time_in_millis")},
              "diff": {"before": {}, "after": {t: {"from": "%s/%s:%s" % (repository, name, s)}
                                               for s, t in mapping.items()}}}
    if params["compare_with"] == "snapshot" and manifest not in in_snapshot:
        raise OpenSearchFailure(
            "snapshot %s holds no manifest of document counts (not taken by"
            " backup-opensearch)" % name, "restore with -e compare_with=live")
    if not sources:
        result["msg"] = ("every selected index of %s/%s exists (%s): nothing to restore in"
                         " place" % (repository, name, ", ".join(kept)))
        return result
    if check_mode:
        result["msg"] = "would restore %s/%s as: %s" % (
            repository, name, ", ".join("%s -> %s" % kv for kv in sorted(mapping.items())))
        if kept:
            result["msg"] += "; existing, left alone: %s" % ", ".join(kept)
        return result
    if params["compare_with"] == "snapshot":
        expected, _ = recorded_counts(client, repository, chosen)
        label = "snapshot count of"
    else:
        expected = live_counts(client, sources)
        label = "live index"
    body = {"indices": ",".join(sources), "include_global_state": False,
            "include_aliases": False}
    if not params["in_place"]:
        body.update(rename_pattern=params["rename_pattern"],
                    rename_replacement=params["rename_replacement"])
    started = time.monotonic()
    timing = {"requested": time.time()}
    call("POST _snapshot/%s/%s/_restore" % (repository, name), client.snapshot.restore,
         repository=repository, snapshot=name, body=body, wait_for_completion=False)
    progress = wait_for_primaries(client, targets, params)
    timing["primaries_active"] = time.time()
    call("POST _refresh", client.indices.refresh, index=",".join(targets))
    restored = {s: (mapping[s], int(call("GET %s/_count" % mapping[s], client.count,
                                         index=mapping[s])["count"])) for s in sources}
    timing["counted"] = time.time()
    result["timing"] = timing
    checks = count_checks(expected, restored, label)
    counts = {s: {"restored_index": t, "restored": c, "expected": expected.get(s)}
              for s, (t, c) in restored.items()}
    seconds = time.monotonic() - started
    result.update(counts=counts, checks=checks, progress=progress, seconds=round(seconds, 1))
    failed = [c for c in checks if c["status"] == "fail"]
    summary = "restored %s/%s into %d index(es) in %.1f s" % (repository, name, len(targets),
                                                              seconds)
    if failed:
        raise OpenSearchFailure(
            summary + "; document counts differ: "
            + "; ".join(c["evidence"] for c in failed), failed[0].get("hint", ""),
            **{k: v for k, v in result.items() if k != "diff"})
    result["msg"] = summary + "; document counts equal (%d documents)" % sum(
        c for _, c in restored.values())
    if kept:
        result["msg"] += "; existing, left alone: %s" % ", ".join(kept)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = restore(connect(module.params), module.params, module.check_mode)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
