# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Controller-side evaluation: no module is shipped to a host, so it costs no fork per cluster."""

from __future__ import absolute_import, annotations, division, print_function

import time

from ansible.plugins.action import ActionBase
from ansible_collections.watchkeeper.platform.plugins.module_utils.remote_write import (
    evaluate_agent,
    evaluate_receiver,
)


def evaluate(first, second, thresholds, now):
    """All checks of one cluster from the two samples."""
    elapsed = second["sampled_at"] - first["sampled_at"]
    checks = evaluate_agent(first.get("agent"), second.get("agent"), elapsed, thresholds,
                            second.get("remote_write_error", ""))
    earlier = {r["url"]: r for r in first.get("receivers", [])}
    for receiver in second.get("receivers", []):
        before = earlier.get(receiver["url"], receiver)
        checks.extend(evaluate_receiver(before, receiver, elapsed, now, thresholds))
    return checks


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("first", "second", "thresholds"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        for name in ("first", "second"):
            if not isinstance(args.get(name), dict):
                result.update(failed=True, msg="%s must be a remote_write_sample result" % name)
                return result
        checks = evaluate(args["first"], args["second"], args.get("thresholds") or {},
                          time.time())
        failed = [c for c in checks if c["status"] == "fail"]
        result.update(changed=False, checks=checks)
        if failed:
            result["failed"] = True
            result["msg"] = "; ".join("%s: %s" % (c["name"], c["evidence"]) for c in failed)
        else:
            warned = sum(1 for c in checks if c["status"] == "warn")
            result["msg"] = "%d check(s) ok, %d warning(s)" % (len(checks) - warned, warned)
        return result
