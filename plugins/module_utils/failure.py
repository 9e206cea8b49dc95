# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""The one failure shape of the collection's modules: a message, a hint saying what to do next,
and details that go into the result. A module's main() turns it into
``module.fail_json(**failure.result())``; each module_utils subclasses it under its own name
(KubeFailure, OpenSearchFailure, BackupFailure, BucketFailure, VerifyFailure,
PrometheusFailure) so a module catches only the failures of what it calls.
"""

from __future__ import absolute_import, annotations, division, print_function


class ModuleFailure(Exception):
    """A failed operation, with what to do next. Modules turn it into fail_json."""

    def __init__(self, message, hint="", **details):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def result(self):
        """The fail_json keyword arguments: the details and msg (message, then the hint)."""
        out = dict(self.details)
        out["msg"] = self.message + (" (%s)" % self.hint if self.hint else "")
        return out
