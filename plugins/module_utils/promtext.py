# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Pure functions over the Prometheus text exposition format."""

from __future__ import absolute_import, annotations, division, print_function

from prometheus_client.parser import text_string_to_metric_families


def parse(text, names=None):
    """Samples of the wanted metric names: {sample_name: [[labels, value], ...]}.

    `names` filters by sample name (e.g. `prometheus_remote_storage_samples_total`); None keeps
    everything. Unparseable input raises ValueError naming the problem.
    """
    wanted = set(names) if names is not None else None
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if wanted is not None and sample.name not in wanted:
                continue
            found.setdefault(sample.name, []).append([dict(sample.labels), float(sample.value)])
    return found


def total(samples, name, **match):
    """Sum of `name` over series whose labels include `match`; None when the metric is absent."""
    series = samples.get(name)
    if series is None:
        return None
    return sum(v for labels, v in series if all(labels.get(k) == val for k, val in match.items()))


def first_present(samples, *names):
    """The first of `names` present in `samples` (metric renames across versions)."""
    for name in names:
        if name in samples:
            return name
    return None


def maximum(samples, name):
    """Largest value of `name` over all its series; None when the metric is absent."""
    series = samples.get(name)
    if not series:
        return None
    return max(v for _, v in series)
