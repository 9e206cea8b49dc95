# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Requests and limits from observed usage: pure arithmetic and Kubernetes quantities.

Memory request = the 95th percentile of the busiest pod's working set over the window, times
the headroom; memory limit = the peak times the limit factor (never below the request): the
OOM killer acts on the limit, so it covers the worst seen, not the usual. CPU request = the
95th percentile of the busiest pod's usage times the headroom, at least 10m; no CPU limit is
recommended (a CPU limit throttles a receiver or agent at its busiest moment, when it must
catch up), and an existing one is left as it is.
"""

from __future__ import absolute_import, annotations, division, print_function

import math

_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}
_DECIMAL = {"k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12}


def parse_memory(text):
    """Bytes of a Kubernetes memory quantity ("512Mi", "1G", "1048576")."""
    text = str(text).strip()
    for suffix, factor in list(_BINARY.items()) + list(_DECIMAL.items()):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def parse_cpu(text):
    """Cores of a Kubernetes CPU quantity ("250m", "1.5")."""
    text = str(text).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000.0
    return float(text)


def memory_quantity(value):
    """Bytes as whole Mi, rounded up."""
    return "%dMi" % max(1, math.ceil(value / 2 ** 20))


def cpu_quantity(cores):
    """Cores as whole millicores, rounded up, at least 10m."""
    return "%dm" % max(10, math.ceil(cores * 1000))


def recommend(memory_p95, memory_peak, cpu_p95, headroom=1.2, limit_factor=1.5,
              current=None):
    """Recommended `resources` for a container from observed usage (bytes, cores)."""
    current = current or {}
    request_memory = memory_p95 * headroom
    limit_memory = max(memory_peak * limit_factor, request_memory)
    out = {
        "requests": {"cpu": cpu_quantity(cpu_p95 * headroom),
                     "memory": memory_quantity(request_memory)},
        "limits": {"memory": memory_quantity(limit_memory)},
    }
    cpu_limit = (current.get("limits") or {}).get("cpu")
    if cpu_limit:
        out["limits"]["cpu"] = cpu_limit
    return out
