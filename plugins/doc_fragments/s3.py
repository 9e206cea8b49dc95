# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""The connection options every S3 module takes (module_utils/s3.py S3_SPEC):
`extends_documentation_fragment: watchkeeper.platform.s3`."""

from __future__ import absolute_import, annotations, division, print_function


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  s3_endpoint:
    description: S3 endpoint URL (empty for AWS).
    type: str
  s3_region:
    description: S3 region.
    type: str
    default: us-east-1
  s3_access_key:
    description: S3 access key (default AWS credential chain when absent).
    type: str
  s3_secret_key:
    description: S3 secret key.
    type: str
"""
