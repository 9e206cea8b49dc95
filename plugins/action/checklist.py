# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Run checklist items inside the controller's worker when the connection is local.

Every watchkeeper cluster entry uses `ansible_connection: local` and the items are HTTP and
API reads from the controller anyway; shipping the module would start an interpreter per
cluster and task. Other connections get the real module.

A failed check does not fail the task, so the checklist goes on with the next items; the
checklist's last task (`verdict: true`) fails the cluster once, naming every failed check of
this and the earlier tasks (`earlier`).

The kubernetes client is imported when this file is loaded. Ansible's controller loads a task's
action plugin itself (the linear and free strategies look up BYPASS_HOST_LOOP) before it forks
one worker per cluster and task, so every worker inherits the client instead of importing it
again: its API modules build several hundred pydantic models, about 1 s of CPU per worker,
which was most of the cost of a checklist over many clusters (benchmarks/checklist.py).
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist import worst
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist_probe import (
    ARGUMENT_SPEC,
    run_items,
    verdict_over,
)

PRELOADED = ("CoreV1Api", "CustomObjectsApi")  # what the items use (argocd, disk, wal, versions)


def _preload_kubernetes():
    try:
        from kubernetes import client, config  # noqa: F401

        for name in PRELOADED:
            getattr(client, name)  # the API modules load lazily, on first attribute access
    except ImportError:
        pass  # the items that need it say so when they run


_preload_kubernetes()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport != "local":
            result.update(self._execute_module(task_vars=task_vars))
            return result
        validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg="; ".join(validated.error_messages))
            return result
        try:
            checks = run_items(validated.validated_parameters)
        except ValueError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        params = validated.validated_parameters
        result.update(changed=False, checks=checks, worst=worst(checks))
        failed, message = verdict_over(params if params["verdict"] else
                                       dict(params, earlier=[], strict=False), checks)
        result["msg"] = message
        if failed and params["verdict"]:
            result["failed"] = True
        return result
