# Copyright: watchkeeper maintainers; Apache-2.0
"""Breaking changes from the release notes of Thanos and Prometheus, as data: which apply
between two versions, and what an upgrade does about each (refuse when a check fails, or
tell).

Sources: the CHANGELOG.md of thanos-io/thanos and prometheus/prometheus, and Prometheus'
migration guide for 3.0 (docs/migration.md). Each entry names the version that introduced
the change; it applies to an upgrade from a version below it to one at or above it.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

THANOS = (
    {"id": "ketama-min-endpoints", "since": "0.32.0",
     "change": "the ketama hashring algorithm refuses a hashring with fewer endpoints than the"
               " replication factor (the receiver does not load it)",
     "check": "ketama_endpoints"},
    {"id": "rf2-quorum", "since": "0.37.0",
     "change": "with replication factor 2 a write needs 1 successful replica instead of 2:"
               " one receiver down no longer fails writes (receiver-health's quorum follows"
               " the version)"},
    {"id": "capnproto-listener", "since": "0.40.0",
     "change": "receivers listen for Cap'n Proto replication on --receive.capnproto-address"
               " (19391); replication over it is opt-in (--receive.replication-protocol):"
               " allow the port between receivers before turning it on"},
)

PROMETHEUS = (
    {"id": "agent-flag", "since": "3.0.0",
     "change": "agent mode is the --agent flag; --enable-feature=agent is gone, and a 3.x"
               " Prometheus given only that starts as a full server, not an agent",
     "check": "agent_flag"},
    {"id": "removed-feature-flags", "since": "3.0.0",
     "change": "feature flags that became the default are removed: promql-at-modifier,"
               " promql-negative-offset, new-service-discovery-manager,"
               " expand-external-labels, no-default-scrape-port, auto-gomemlimit;"
               " remote-write-receiver is the --web.enable-remote-write-receiver flag",
     "check": "removed_flags"},
    {"id": "utf8-names", "since": "3.0.0",
     "change": "metric and label names may be any UTF-8 (name validation scheme utf8): names"
               " that 2.x rejected are accepted; remote-write receivers and queries see them"},
    {"id": "scrape-protocols", "since": "3.0.0",
     "change": "scrape targets that send no or an invalid Content-Type fail unless the"
               " scrape config sets fallback_scrape_protocol"},
    {"id": "le-quantile-normalized", "since": "3.0.0",
     "change": "le and quantile label values are normalized (1 becomes 1.0): queries and"
               " recording rules that match le=\"1\" literally change"},
)

#: Feature flags Prometheus 3 removed (the migration guide's list): the default now, so
#: harmless; except these two, whose feature is lost unless its own flag replaces them.
REMOVED_PROMETHEUS_FEATURES = ("promql-at-modifier", "promql-negative-offset",
                               "new-service-discovery-manager", "expand-external-labels",
                               "no-default-scrape-port", "auto-gomemlimit")
REPLACED_PROMETHEUS_FEATURES = {"agent": "--agent",
                                "remote-write-receiver": "--web.enable-remote-write-receiver"}


def parse(version):
    """(major, minor, patch) of 'v0.40.1', '2.42.0+ds', '3.16.0-rc.0'."""
    found = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", str(version or ""))
    if not found:
        raise ValueError("not a version: %r" % version)
    return tuple(int(x or 0) for x in found.groups())


def between(notes, old, new):
    """The notes an upgrade old -> new crosses (a downgrade crosses none)."""
    low, high = parse(old), parse(new)
    return [n for n in notes if low < parse(n["since"]) <= high]


def ketama_endpoints(ring, replication_factor):
    """Problems with a ring (the parsed hashrings.json) for ketama: each ketama ring needs at
    least replication_factor endpoints."""
    problems = []
    for entry in ring or []:
        if (entry.get("algorithm") or "ketama") != "ketama":
            continue
        count = len(entry.get("endpoints") or [])
        if count < int(replication_factor):
            problems.append("hashring %r has %d endpoint(s) < replication factor %d" % (
                entry.get("hashring", ""), count, int(replication_factor)))
    return problems


def features(args):
    found = []
    for arg in args or []:
        if arg.startswith("--enable-feature="):
            found += [f for f in arg.split("=", 1)[1].split(",") if f]
    return found


def agent_flag(before_args, after_args):
    """Problems of a Prometheus 2 -> 3 agent: it ran as an agent and will not be one."""
    was_agent = "agent" in features(before_args) or "--agent" in (before_args or [])
    if was_agent and "--agent" not in (after_args or []):
        return ["the new arguments lack --agent: Prometheus 3 would start as a full server"
                " (%s)" % " ".join(a for a in after_args or [] if "agent" in a) or "no agent"
                " flag"]
    return []


def removed_flags(before_args, after_args):
    """Problems of Prometheus 3 arguments: a removed feature flag whose feature needs its own
    flag now, and that flag missing. (Feature flags that became the default are harmless.)"""
    problems = []
    for feature in features(after_args):
        flag = REPLACED_PROMETHEUS_FEATURES.get(feature)
        if flag and flag not in (after_args or []):
            problems.append("--enable-feature=%s is removed in 3.0: %s replaces it" % (
                feature, flag))
    return problems
