# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Controller-side verdict over a cluster's checklist results: no module is shipped to a host."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.plugins.action import ActionBase
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist import verdict


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("results", "strict"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        results = self._task.args.get("results")
        if not isinstance(results, list):
            result.update(failed=True, msg="results must be a list of checklist task results")
            return result
        checks = []
        for item in results:
            if not isinstance(item, dict):
                continue
            if item.get("failed") and not item.get("checks"):
                # A checklist task that could not run at all counts as a failed check.
                checks.append({"name": "checklist task", "status": "fail",
                               "evidence": str(item.get("msg", "failed"))})
            checks.extend(c for c in item.get("checks") or [] if isinstance(c, dict))
        failed, message = verdict(checks, boolean(self._task.args.get("strict", False)))
        result.update(changed=False, failed=failed, msg=message)
        return result
