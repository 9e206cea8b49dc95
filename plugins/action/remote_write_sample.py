# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Run remote_write_sample inside the controller's worker when the connection is local.

Every watchkeeper cluster entry uses `ansible_connection: local`, and the sampling is HTTP from
the controller anyway; shipping the module would start a Python interpreter per cluster and
task (most of the cost of a 50-cluster status). Other connections get the real module.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.watchkeeper.platform.plugins.module_utils.sampling import (
    ARGUMENT_SPEC,
    sample,
)


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
        result.update(sample(validated.validated_parameters))
        return result
