# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Sampling of agents and receivers: the body of the remote_write_sample module and action.

Shared by the module (runs on a target host) and the action plugin (runs in the controller's
worker for local connections), so both take the same arguments and return the same result.
"""

from __future__ import absolute_import, annotations, division, print_function

import time

from ansible_collections.watchkeeper.platform.plugins.module_utils import promhttp, promtext
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    AGENT_METRICS,
    RECEIVER_METRICS,
)

ARGUMENT_SPEC = dict(
    agent_url=dict(type="str"),
    agent_username=dict(type="str"),
    agent_password=dict(type="str", no_log=True),
    receiver_urls=dict(type="list", elements="str", default=[]),
    remote_write_url=dict(type="str"),
    not_before=dict(type="float"),
    timeout=dict(type="float", default=5.0),
)

#: The longest a second sample waits for its window (bounds a bad not_before).
MAX_WAIT_SECONDS = 300


def sample_endpoint(url, names, timeout, username=None, password=None):
    """Readiness plus the wanted metrics of one endpoint; errors become `detail`."""
    base = url.rstrip("/")
    ready = promhttp.get(base + "/-/ready", timeout, username, password)
    result = {"url": base, "ready": ready.ok, "detail": ready.error, "samples": {}}
    metrics = promhttp.get(base + "/metrics", timeout, username, password)
    if metrics.ok:
        try:
            result["samples"] = promtext.parse(metrics.body, names)
        except ValueError as exc:
            result["detail"] = result["detail"] or "unparseable /metrics: %s" % exc
    elif not result["detail"]:
        result["detail"] = "/metrics: " + metrics.error
    return result


def sample(params):
    """Take one sample of the agent, the receivers and the remote-write endpoint."""
    if params.get("not_before"):
        delay = params["not_before"] - time.time()
        if delay > 0:
            time.sleep(min(delay, MAX_WAIT_SECONDS))
    result = {"changed": False, "sampled_at": time.time(), "receivers": []}
    if params.get("agent_url"):
        result["agent"] = sample_endpoint(params["agent_url"], AGENT_METRICS, params["timeout"],
                                          params.get("agent_username"),
                                          params.get("agent_password"))
    for url in params.get("receiver_urls") or []:
        result["receivers"].append(sample_endpoint(url, RECEIVER_METRICS, params["timeout"]))
    if params.get("remote_write_url"):
        result["remote_write_error"] = promhttp.tcp_probe(params["remote_write_url"])
    return result
