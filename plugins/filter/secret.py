# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
name: secret
short_description: Resolve a watchkeeper secret reference
description:
  - C({env: VAR}) resolves to the environment variable VAR of the watchkeeper process.
  - An Ansible Vault value resolves to its decrypted text (Ansible decrypts it on use).
  - Pass the result only to module options marked C(no_log).
positional: _input
options:
  _input:
    description: The reference.
    type: raw
    required: true
"""

import os

from ansible.errors import AnsibleFilterError


def secret(ref):
    if isinstance(ref, dict):
        if set(ref) != {"env"}:
            raise AnsibleFilterError("a secret reference is {env: VAR_NAME}; got keys %s"
                                     % sorted(ref))
        value = os.environ.get(ref["env"])
        if not value:
            raise AnsibleFilterError("secret reference {env: %s} is not set: export %s in the"
                                     " environment of watchkeeper" % (ref["env"], ref["env"]))
        return value
    if ref is None or ref == "":
        raise AnsibleFilterError("empty secret reference")
    return str(ref)  # a vault value, decrypted by Ansible


class FilterModule(object):
    def filters(self):
        return {"secret": secret}
