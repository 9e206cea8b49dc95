# Copyright: watchkeeper maintainers; Apache-2.0
"""Sharding a cluster's Prometheus Agent: the pure parts (names, configuration, assignment).

Shard 0 is the agent as deployed (StatefulSet `prometheus-agent`, ConfigMap
`prometheus-agent-config`); shard i > 0 is StatefulSet `prometheus-agent-shard-i` with ConfigMap
`prometheus-agent-shard-i-config`, one replica each: Prometheus 2.x cannot take its shard
number from the pod (no environment in relabel rules), so each shard gets its own file, as the
Prometheus Operator does. Every scrape job of shard i of N ends with

    - {source_labels: [__address__], modulus: N, target_label: __tmp_wk_shard, action: hashmod}
    - {source_labels: [__tmp_wk_shard], regex: "i", action: keep}

so the shards' targets are disjoint and together all of them. No shard external label: the
series of a target are the same whichever shard scrapes it, so moving a target between shards
keeps its series continuous in Thanos and nothing is counted twice in steady state.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import hashlib
import re
import struct

SHARD_LABEL = "__tmp_wk_shard"
SHARD_KEY = "watchkeeper.io/shard"
UNSHARDED = "watchkeeper.io/unsharded-config"
_SHARD_NAME = re.compile(r"^(?P<base>.+)-shard-(?P<index>[1-9][0-9]*)$")


def statefulset_name(base, shard):
    return base if shard == 0 else "%s-shard-%d" % (base, shard)


def configmap_name(base_configmap, base_statefulset, shard):
    return base_configmap if shard == 0 else "%s-config" % statefulset_name(base_statefulset, shard)


def shard_of(name, base):
    """The shard number of a StatefulSet name (0 for the base), None when not a shard."""
    if name == base:
        return 0
    match = _SHARD_NAME.match(name)
    if match and match.group("base") == base:
        return int(match.group("index"))
    return None


def hashmod(value, modulus):
    """Prometheus's hashmod relabel action: the low 8 bytes of the MD5, big-endian, mod N."""
    digest = hashlib.md5(value.encode()).digest()
    return struct.unpack(">Q", digest[8:])[0] % modulus


def owner(target, shards):
    """The shard that keeps `target` (a scrape address) when there are `shards` shards."""
    return hashmod(target, shards) if shards > 1 else 0


def moves(current, targets, shards):
    """[(target, from shards, to shard)] for every target whose owner changes: `current` is
    {shard: active addresses} as the agents report them (a target on no shard has from ())."""
    found = []
    for target in sorted(targets):
        now = tuple(sorted(s for s, active in current.items() if target in active))
        to = owner(target, shards)
        if now != (to,):
            found.append((target, now, to))
    return found


def assignment(targets, shards):
    """{shard: sorted targets} for `targets` (scrape addresses) over `shards` shards."""
    found = dict((i, []) for i in range(shards))
    for target in targets:
        found[owner(target, shards)].append(target)
    return dict((i, sorted(t)) for i, t in found.items())


def _is_ours(rule):
    return rule.get("target_label") == SHARD_LABEL or SHARD_LABEL in (
        rule.get("source_labels") or [])


def render(config, shard, shards):
    """The agent configuration (a dict) for `shard` of `shards`: every scrape job keeps only
    its share of the targets; shards == 1 removes the sharding rules."""
    out = copy.deepcopy(config)
    for job in out.get("scrape_configs") or []:
        rules = [r for r in job.get("relabel_configs") or [] if not _is_ours(r)]
        if shards > 1:
            rules += [{"source_labels": ["__address__"], "modulus": shards,
                       "target_label": SHARD_LABEL, "action": "hashmod"},
                      {"source_labels": [SHARD_LABEL], "regex": str(shard), "action": "keep"}]
        if rules:
            job["relabel_configs"] = rules
        else:
            job.pop("relabel_configs", None)
    return out


def modulus_of(config):
    """The shard count a rendered configuration was made for (1 when not sharded)."""
    for job in config.get("scrape_configs") or []:
        for rule in job.get("relabel_configs") or []:
            if rule.get("target_label") == SHARD_LABEL and rule.get("action") == "hashmod":
                return int(rule.get("modulus") or 1)
    return 1


def shard_statefulset(base, shard, configmap, annotations):
    """Shard `shard`'s StatefulSet from the base one (a dict from the API): its own name,
    selector label, ConfigMap and pod annotations; the same container, claims and grace."""
    sts = copy.deepcopy(base)
    name = statefulset_name(base["metadata"]["name"], shard)
    meta = sts["metadata"]
    sts["metadata"] = {"name": name, "namespace": meta.get("namespace"),
                       "labels": dict(meta.get("labels") or {}, **{SHARD_KEY: str(shard)}),
                       "annotations": {SHARD_KEY: str(shard)}}
    sts.pop("status", None)
    spec = sts["spec"]
    spec["replicas"] = 1
    spec["selector"] = {"matchLabels": dict(spec["selector"].get("matchLabels") or {},
                                            **{SHARD_KEY: str(shard)})}
    template = spec["template"]
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = dict(template_meta.get("labels") or {}, **{SHARD_KEY: str(shard)})
    template_meta["annotations"] = dict(template_meta.get("annotations") or {},
                                        **(annotations or {}))
    for volume in template["spec"].get("volumes") or []:
        if (volume.get("configMap") or {}).get("name"):
            volume["configMap"]["name"] = configmap
    for claim in spec.get("volumeClaimTemplates") or []:
        for key in ("creationTimestamp", "uid", "resourceVersion"):
            (claim.get("metadata") or {}).pop(key, None)
        claim.pop("status", None)
    return sts
