#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: opensearch_snapshot
short_description: Take an OpenSearch snapshot of index patterns, wait for it and verify it
description:
  - Resolves the index patterns to the open indices they match (none is an error, as an empty
    snapshot backs up nothing), counts each index's documents, starts the snapshot and polls it
    until it ends or I(wait_timeout) passes, recording progress (shards done, bytes).
  - The snapshot passes only with state C(SUCCESS) and every shard successful. C(PARTIAL) or
    C(FAILED) fails the task, naming the failed shards.
  - The document counts taken just before the snapshot are written as a manifest document
    (id = the snapshot name) into I(manifest_index), which the snapshot includes, so a restore
    can compare with them later, even on a cluster that lost everything. (Snapshot C(metadata)
    is limited to 1024 bytes, too small for the counts of many daily indices.) An index whose
    count changed while the snapshot ran is reported as a warning.
  - Check mode lists the snapshot and the indices it would hold, and changes nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  repository:
    description: Snapshot repository (see M(watchkeeper.platform.opensearch_snapshot_repository)).
    type: str
    required: true
  snapshot:
    description: Name of the snapshot to take (lower case).
    type: str
    required: true
  indices:
    description: Index patterns to snapshot.
    type: list
    elements: str
    required: true
  partial:
    description:
      - Let OpenSearch snapshot indices whose primaries are unavailable. The snapshot then ends
        C(PARTIAL), which still fails the task; without it OpenSearch refuses to start.
    type: bool
    default: false
  metadata:
    description: Extra metadata stored with the snapshot (e.g. the run id; under 1024 bytes).
    type: dict
    default: {}
  manifest_index:
    description: Index holding one manifest document (document counts) per snapshot.
    type: str
    default: watchkeeper-snapshots
  wait_timeout:
    description: Seconds to wait for the snapshot to end.
    type: float
    default: 3600
  poll_interval:
    description: Seconds between two progress polls.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: Snapshot the log indices
  watchkeeper.platform.opensearch_snapshot:
    url: http://opensearch:9200
    repository: watchkeeper
    snapshot: watchkeeper-20260101t000000z-abc123
    indices: [logs-*]
"""

RETURN = r"""
snapshot:
  description: The snapshot as OpenSearch reports it at the end (state, shards, indices, times).
  type: dict
  returned: when the snapshot was started
indices:
  description: The indices the patterns resolved to.
  type: list
  returned: always
doc_counts:
  description: Documents per index counted just before the snapshot.
  type: dict
  returned: when not in check mode
progress:
  description: Samples taken while waiting (seconds, state, shards done / total, bytes).
  type: list
  returned: when not in check mode
checks:
  description: snapshot state and snapshot shards checks (name, status, evidence, hint).
  type: list
  returned: when the snapshot ended
"""

import contextlib
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    call,
    connect,
    not_found,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_snapshot import (
    IN_PROGRESS,
    name_problem,
    pattern_problem,
    verdict,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    repository=dict(type="str", required=True),
    snapshot=dict(type="str", required=True),
    indices=dict(type="list", elements="str", required=True),
    partial=dict(type="bool", default=False),
    metadata=dict(type="dict", default={}),
    manifest_index=dict(type="str", default="watchkeeper-snapshots"),
    wait_timeout=dict(type="float", default=3600.0),
    poll_interval=dict(type="float", default=2.0),
)
MAX_PROGRESS_SAMPLES = 120


def resolve(client, patterns):
    """[{index, health}] of the open indices the patterns match (sorted)."""
    rows = call("GET _cat/indices/%s" % ",".join(patterns), client.cat.indices,
                index=",".join(patterns), format="json", h="index,health,status",
                expand_wildcards="open")
    return sorted(({"index": r["index"], "health": r.get("health")} for r in rows),
                  key=lambda r: r["index"])


def count_documents(client, indices):
    """{index: documents} after a refresh; red indices cannot be searched and are left out."""
    searchable = [i["index"] for i in indices if i["health"] != "red"]
    if not searchable:
        return {}
    call("POST %s/_refresh" % ",".join(searchable), client.indices.refresh,
         index=",".join(searchable))
    return {name: int(call("GET %s/_count" % name, client.count, index=name)["count"])
            for name in searchable}


def _progress_sample(client, repository, snapshot, started):
    sample = {"seconds": round(time.monotonic() - started, 1)}
    try:
        status = call("GET _snapshot/%s/%s/_status" % (repository, snapshot),
                      client.snapshot.status, repository=repository, snapshot=snapshot)
    except OpenSearchFailure:
        return sample  # progress is best effort; the state poll decides
    for item in status.get("snapshots") or []:
        shards = item.get("shards_stats") or {}
        stats = item.get("stats") or {}
        sample.update(state=item.get("state"), shards_done=shards.get("done"),
                      shards_total=shards.get("total"),
                      bytes_done=(stats.get("processed") or {}).get("size_in_bytes"),
                      bytes_total=(stats.get("total") or {}).get("size_in_bytes"))
    return sample


def write_manifest(client, index, document):
    """Index the snapshot's manifest document (creating the manifest index on first use)."""
    if not call("HEAD %s" % index, client.indices.exists, index=index):
        try:
            call("PUT %s" % index, client.indices.create, index=index, body={
                "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
                # Index names as keys would grow the mapping with every index: store, not map.
                "mappings": {"dynamic": False, "properties": {
                    "snapshot": {"type": "keyword"}, "repository": {"type": "keyword"},
                    "taken_at": {"type": "date"},
                    "doc_counts": {"type": "object", "enabled": False}}}})
        except OpenSearchFailure as exc:
            if "resource_already_exists" not in exc.message:  # another run created it
                raise
    call("PUT %s/_doc/%s" % (index, document["snapshot"]), client.index, index=index,
         id=document["snapshot"], body=document, refresh="true")


def wait(client, params, started):
    """Poll until the snapshot leaves IN_PROGRESS; bounded by wait_timeout."""
    repository, snapshot = params["repository"], params["snapshot"]
    deadline = time.monotonic() + params["wait_timeout"]
    progress = []
    while True:
        info = call("GET _snapshot/%s/%s" % (repository, snapshot), client.snapshot.get,
                    repository=repository, snapshot=snapshot)["snapshots"][0]
        if info.get("state") != IN_PROGRESS:
            return info, progress
        sample = _progress_sample(client, repository, snapshot, started)
        if len(progress) >= MAX_PROGRESS_SAMPLES:
            del progress[1]  # keep the first sample and the latest ones
        progress.append(sample)
        if time.monotonic() >= deadline:
            raise OpenSearchFailure(
                "snapshot %s/%s still IN_PROGRESS after %.0f s (last: %s/%s shards done)"
                % (repository, snapshot, params["wait_timeout"], sample.get("shards_done", "?"),
                   sample.get("shards_total", "?")),
                "it keeps running in OpenSearch: follow GET _snapshot/%s/%s/_status and raise"
                " -e wait_timeout" % (repository, snapshot), progress=progress)
        time.sleep(max(params["poll_interval"], 0.2))


def take(client, params, check_mode):
    """Resolve, count, snapshot, wait and verify. Raises OpenSearchFailure on any failure."""
    repository, snapshot = params["repository"], params["snapshot"]
    for problem in [name_problem(snapshot, "snapshot name")] + [
            pattern_problem(p) for p in params["indices"]]:
        if problem:
            raise OpenSearchFailure(problem)
    # The manifest index travels with every snapshot; it is not one of the backed-up indices.
    indices = [i for i in resolve(client, params["indices"])
               if i["index"] != params["manifest_index"]]
    names = [i["index"] for i in indices]
    if not names:
        raise OpenSearchFailure("index patterns %s match no open index"
                                % ", ".join(params["indices"]),
                                "check -e indices; an empty snapshot backs up nothing")
    result = {"changed": True, "indices": names, "repository": repository,
              "snapshot_name": snapshot}
    result["diff"] = {"before": {}, "after": {snapshot: {"indices": names}},
                      "after_header": "_snapshot/%s" % repository}
    if check_mode:
        result["msg"] = "would snapshot %d index(es) into %s/%s: %s (and its manifest in %s)" % (
            len(names), repository, snapshot, ", ".join(names), params["manifest_index"])
        return result
    try:
        call("GET _snapshot/%s/%s" % (repository, snapshot), client.snapshot.get,
             repository=repository, snapshot=snapshot)
        raise OpenSearchFailure("snapshot %s/%s already exists" % (repository, snapshot),
                                "every run takes a snapshot of its own name; run again")
    except OpenSearchFailure as exc:
        if not not_found(exc):
            raise
    before = count_documents(client, indices)
    manifest = params["manifest_index"]
    write_manifest(client, manifest, {
        "snapshot": snapshot, "repository": repository, "doc_counts": before,
        "taken_at": int(time.time() * 1000), "run_id": (params["metadata"] or {}).get("run_id")})
    metadata = dict(params["metadata"] or {})
    metadata.update(taken_by="watchkeeper", patterns=list(params["indices"]),
                    manifest_index=manifest)
    body = {"indices": ",".join([n for n in names if n != manifest] + [manifest]), "ignore_unavailable": False,
            "include_global_state": False, "partial": params["partial"], "metadata": metadata}
    started = time.monotonic()
    try:
        call("PUT _snapshot/%s/%s" % (repository, snapshot), client.snapshot.create,
             repository=repository, snapshot=snapshot, body=body, wait_for_completion=False)
    except OpenSearchFailure:
        # No snapshot, so no manifest: a leftover would describe a snapshot that never was.
        # the refusal is what the operator must see
        with contextlib.suppress(OpenSearchFailure):
            call("DELETE %s/_doc/%s" % (manifest, snapshot), client.delete, index=manifest,
                 id=snapshot, refresh="true")
        raise
    info, progress = wait(client, params, started)
    seconds = time.monotonic() - started
    after = count_documents(client, indices)
    checks = verdict(info)
    moved = ["%s %d -> %d" % (n, before[n], after.get(n, 0)) for n in sorted(before)
             if after.get(n) != before[n]]
    if moved:
        checks.append({"name": "documents stable during the snapshot", "status": "warn",
                       "evidence": "written while the snapshot ran: " + "; ".join(moved),
                       "hint": "a restore of these indices may hold more documents than"
                               " the counts recorded in the snapshot"})
    shards = info.get("shards") or {}
    result.update(snapshot=info, doc_counts=before, progress=progress, checks=checks,
                  seconds=round(seconds, 1))
    summary = "snapshot %s/%s: %s, %s/%s shards successful, %d index(es), %d documents, %.1f s" % (
        repository, snapshot, info.get("state"), shards.get("successful", 0),
        shards.get("total", 0), len(names), sum(before.values()), seconds)
    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        raise OpenSearchFailure(
            summary + ": " + "; ".join("%s: %s" % (c["name"], c["evidence"]) for c in failed),
            failed[0].get("hint", ""), **{k: v for k, v in result.items() if k != "diff"})
    result["msg"] = summary
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = take(connect(module.params), module.params, module.check_mode)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
