# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""The connection options every OpenSearch module takes (module_utils/opensearch_api.py
CONNECTION_SPEC): `extends_documentation_fragment: watchkeeper.platform.opensearch`."""

from __future__ import absolute_import, annotations, division, print_function


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  url:
    description: OpenSearch base URL.
    type: str
    required: true
  username:
    description: Basic-auth user.
    type: str
  password:
    description: Basic-auth password.
    type: str
  request_timeout:
    description: Seconds per HTTP request.
    type: float
    default: 30
"""
