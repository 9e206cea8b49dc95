# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure judgement for HA replicas of a full Prometheus server (scale-prometheus).

An HA set is N identical Prometheus servers (one StatefulSet, N replicas) that scrape the same
targets; each adds an external label (`replica` by default) whose value is its own pod name,
and Thanos Query deduplicates on that label (`--query.replica-label`). Two replicas without a
distinct replica label write every series twice under the same labels: the receivers reject
one copy as duplicates or out of order, and what Query returns depends on which copy won.
So the value must be the pod's name, expanded per pod: in the StatefulSet, an env var from
the downward API (`POD_NAME` from `metadata.name`) and `${POD_NAME}` in the external labels,
with `--enable-feature=expand-external-labels` (Prometheus 2.x).
"""

from __future__ import absolute_import, annotations, division, print_function

FEATURE = "--enable-feature=expand-external-labels"


def loaded_external_labels(status_config):
    """The external labels of the configuration a Prometheus loaded, from the body of its
    /api/v1/status/config (what it runs, not what its ConfigMap says)."""
    import json

    import yaml

    config = yaml.safe_load(json.loads(status_config)["data"]["yaml"]) or {}
    return dict((config.get("global") or {}).get("external_labels") or {})


def replica_label_problems(labels_by_pod, label):
    """What keeps the pods' loaded external labels ({pod: {label: value}}) from being an HA
    set told apart by `label`: a pod without it, a value that is not the pod's own name (an
    unexpanded `${POD_NAME}` or a constant), two pods with one value."""
    problems = []
    seen = {}
    for pod in sorted(labels_by_pod):
        value = (labels_by_pod[pod] or {}).get(label)
        if value is None:
            problems.append(
                "%s has no external label %r: add `%s: ${POD_NAME}` to global.external_labels"
                " with POD_NAME from the pod's metadata.name and %s" % (pod, label, label,
                                                                        FEATURE))
            continue
        if "${" in value or value.startswith("$"):
            problems.append(
                "%s's %s is %r, not expanded: start Prometheus with %s" % (pod, label, value,
                                                                          FEATURE))
        elif value != pod:
            problems.append(
                "%s's %s is %r, not its pod name: every replica would write the same series;"
                " set it to ${POD_NAME} (downward API) with %s" % (pod, label, value, FEATURE))
        seen.setdefault(value, []).append(pod)
    for value, pods in sorted(seen.items()):
        if len(pods) > 1:
            problems.append("%s share %s=%r" % (", ".join(pods), label, value))
    return problems


def dedup_problem(rows, label):
    """Query answered a deduplicated query with series that still carry `label`: it does not
    deduplicate on it (None when it does, or when there is nothing to judge)."""
    kept = sorted(set(r["metric"].get(label) for r in rows if label in r["metric"]))
    if not kept:
        return None
    return ("Thanos Query keeps %s=%s in deduplicated answers: it does not deduplicate on %r;"
            " add --query.replica-label=%s to Query first, or every series of the HA set is"
            " counted once per replica" % (label, ",".join(kept), label, label))


def target_difference(reference, other):
    """The scrape addresses one replica has and the other lacks, both ways: HA replicas scrape
    the same targets (an empty string when they do)."""
    missing = sorted(set(reference) - set(other))
    extra = sorted(set(other) - set(reference))
    parts = []
    if missing:
        parts.append("lacks " + ", ".join(missing))
    if extra:
        parts.append("also scrapes " + ", ".join(extra))
    return "; ".join(parts)


def plan(statefulset, before, want, label="replica"):
    """The steps of a change from `before` to `want` replicas, in order."""
    if want > before:
        return (["scale StatefulSet %s to %d replicas" % (statefulset, want)]
                + ["%s-%d Ready, its %s label its pod name, scraping what %s-0 scrapes"
                   % (statefulset, i, label, statefulset) for i in range(before, want)])
    if want < before:
        return (["%s-%d's remote-write queue drained" % (statefulset, i)
                 for i in range(before - 1, want - 1, -1)]
                + ["scale StatefulSet %s to %d replicas (claims kept)" % (statefulset, want)])
    return []
