# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Thanos Receive hashring files: validation, the catch-all ring from Ready receivers, the diff,
and the hash a receiver reports for the file it loaded.

A receiver exports `thanos_receive_config_hash`: the first 48 bits of the MD5 of the raw file
bytes, read little-endian, as a float (48 bits fit a float64's 53-bit mantissa). Computing the
same number locally from the file we wrote is how a ring change is proven to have reached
every receiver.
"""

from __future__ import absolute_import, annotations, division, print_function

import difflib
import hashlib
import json
import re


def config_hash(content: bytes) -> float:
    """The value a Thanos receiver reports in thanos_receive_config_hash for `content`."""
    digest = hashlib.md5(content, usedforsecurity=False).digest()
    return float(int.from_bytes(digest[:6], "little"))


ALGORITHMS = ("hashmod", "ketama")
_ENDPOINT = re.compile(r"^(?P<host>[A-Za-z0-9.\-\[\]:]+):(?P<port>[0-9]{1,5})$")


class InvalidHashring(ValueError):
    """A hashring that must not be applied: `problems` says every reason."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def render(rings):
    """The file content we write: stable key order, 2-space indent, trailing newline."""
    return json.dumps(rings, indent=2) + "\n"


def endpoint_address(item):
    """An endpoint entry is "host:port" or, in newer Thanos, {"address": ..., "az": ...}."""
    if isinstance(item, dict):
        return item.get("address")
    return item


def validate(rings, replication_factor, grpc_port=None):
    """Every reason `rings` must not be applied (an empty list means valid).

    Rules: a JSON array of objects; each ring has a non-empty endpoint list with at least
    `replication_factor` distinct host:port endpoints (on the gRPC port when given); rings
    with tenants come first and exactly one catch-all ring (no tenants) comes last, since
    Thanos matches tenants in order and the catch-all takes everything; `algorithm`, when
    set, is one Thanos knows.
    """
    problems = []
    if not isinstance(rings, list) or not rings:
        return ["the hashring file must be a non-empty JSON array of rings"]
    catch_alls = []
    for index, ring in enumerate(rings):
        where = "ring %d (%s)" % (index, ring.get("hashring", "unnamed")
                                   if isinstance(ring, dict) else "?")
        if not isinstance(ring, dict):
            problems.append("%s: must be an object" % where)
            continue
        endpoints = ring.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            problems.append("%s: `endpoints` must be a non-empty list" % where)
            endpoints = []
        addresses = [endpoint_address(e) for e in endpoints]
        for address in addresses:
            match = _ENDPOINT.match(address or "")
            if not match:
                problems.append("%s: endpoint %r is not host:port" % (where, address))
            elif grpc_port is not None and int(match.group("port")) != int(grpc_port):
                problems.append("%s: endpoint %s is not on the gRPC port %s (remote-write"
                                " 19291 and HTTP 10902 are not replication ports)"
                                % (where, address, grpc_port))
        if len(set(addresses)) != len(addresses):
            problems.append("%s: duplicate endpoints" % where)
        if len(set(addresses)) < replication_factor:
            problems.append("%s: %d endpoint(s) < replication factor %d: every write would"
                            " fail its quorum" % (where, len(set(addresses)),
                                                  replication_factor))
        algorithm = ring.get("algorithm")
        if algorithm is not None and algorithm not in ALGORITHMS:
            problems.append("%s: algorithm %r is not one of %s" % (where, algorithm,
                                                                   ", ".join(ALGORITHMS)))
        if not ring.get("tenants"):
            catch_alls.append(index)
    if len(catch_alls) != 1:
        problems.append("there must be exactly one catch-all ring (no tenants); found %d"
                        % len(catch_alls))
    elif catch_alls[0] != len(rings) - 1:
        problems.append("the catch-all ring must be last (it is ring %d of %d): rings are"
                        " matched in order, so the tenant rings after it would never get"
                        " writes" % (catch_alls[0], len(rings)))
    return problems


def with_catch_all_endpoints(rings, endpoints):
    """A copy of `rings` whose catch-all ring has `endpoints` (the others unchanged); a new
    catch-all ring named "default" when there is none."""
    out = json.loads(json.dumps(rings)) if isinstance(rings, list) else []
    for ring in out:
        if isinstance(ring, dict) and not ring.get("tenants"):
            ring["endpoints"] = list(endpoints)
            return out
    out.append({"hashring": "default", "tenants": [], "endpoints": list(endpoints)})
    return out


def diff(old_text, new_text, name="hashrings.json"):
    return "".join(difflib.unified_diff(
        old_text.splitlines(True), new_text.splitlines(True), "a/" + name, "b/" + name))
