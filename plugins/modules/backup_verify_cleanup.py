#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: backup_verify_cleanup
short_description: Delete what a backup verification restored into scratch
description:
  - Deletes a local scratch directory (only inside I(scratch_root)), every version of every
    object under a scratch S3 prefix (only under I(scratch_prefix_root)), and the OpenSearch
    indices whose name starts with I(index_prefix) (listed, then deleted by exact name).
  - Runs after each kind's verification, also when it failed; deleting what is already gone
    is no error. Check mode deletes nothing.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  scratch_root:
    description: The run's local scratch root; nothing outside it is deleted.
    type: path
  path:
    description: Local scratch directory to delete.
    type: path
  s3_endpoint:
    description: S3 endpoint URL.
    type: str
  s3_region:
    description: S3 region.
    type: str
    default: us-east-1
  s3_access_key:
    description: S3 access key.
    type: str
  s3_secret_key:
    description: S3 secret key.
    type: str
  bucket:
    description: Bucket of the scratch prefix.
    type: str
  prefix:
    description: Scratch prefix to empty (every version).
    type: str
  scratch_prefix_root:
    description: Root of every scratch prefix; I(prefix) must be under it.
    type: str
  opensearch_url:
    description: OpenSearch URL.
    type: str
  opensearch_username:
    description: OpenSearch user.
    type: str
  opensearch_password:
    description: OpenSearch password.
    type: str
  index_prefix:
    description: Scratch indices to delete (name prefix, at least 12 characters).
    type: str
"""

EXAMPLES = r"""
- name: Delete the scratch indices
  watchkeeper.platform.backup_verify_cleanup:
    opensearch_url: http://opensearch:9200
    index_prefix: wk-verify-20260101t000000z-ab12cd-
"""

RETURN = r"""
deleted:
  description: What was deleted (directory, S3 versions, indices).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils import s3
from ansible_collections.watchkeeper.platform.plugins.module_utils.backup_verify import (
    VerifyFailure,
    delete_all_versions,
    remove_scratch_dir,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    OpenSearchFailure,
    call,
    connect,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils.s3_backup import s3_reason

ARGUMENT_SPEC = dict(
    s3.S3_SPEC,
    scratch_root=dict(type="path"),
    path=dict(type="path"),
    bucket=dict(type="str"),
    prefix=dict(type="str"),
    scratch_prefix_root=dict(type="str"),
    opensearch_url=dict(type="str"),
    opensearch_username=dict(type="str"),
    opensearch_password=dict(type="str", no_log=True),
    index_prefix=dict(type="str"),
)


def clean(p, check_mode):
    deleted, planned = {}, []
    if p["path"]:
        planned.append(p["path"])
        if not check_mode:
            deleted["directory"] = p["path"] if remove_scratch_dir(
                p["path"], p["scratch_root"] or "") else ""
    if p["prefix"]:
        root = p["scratch_prefix_root"] or ""
        if not root or not p["prefix"].startswith(root) or len(p["prefix"]) <= len(root):
            raise VerifyFailure("refusing to delete s3://%s/%s: not under the scratch prefix %r"
                                % (p["bucket"], p["prefix"], root))
        planned.append("s3://%s/%s" % (p["bucket"], p["prefix"]))
        if not check_mode:
            deleted["s3_versions"] = delete_all_versions(s3.connect(p), p["bucket"],
                                                         p["prefix"])
    if p["index_prefix"]:
        if len(p["index_prefix"]) < 12 or any(c in p["index_prefix"] for c in "*?,"):
            raise VerifyFailure("refusing index prefix %r: too short or a pattern"
                                % p["index_prefix"])
        planned.append("indices %s*" % p["index_prefix"])
        if not check_mode:
            client = connect({"url": p["opensearch_url"], "username": p["opensearch_username"],
                              "password": p["opensearch_password"], "request_timeout": 60.0})
            listed = call("GET _cat/indices/%s*" % p["index_prefix"], client.cat.indices,
                          index=p["index_prefix"] + "*", format="json", expand_wildcards="all")
            names = sorted(i["index"] for i in listed or []
                           if i["index"].startswith(p["index_prefix"]))
            for name in names:  # by exact name: nothing else can go
                call("DELETE %s" % name, client.indices.delete, index=name)
            deleted["indices"] = names
    if check_mode:
        return {"changed": False, "deleted": {},
                "msg": "would delete %s" % (", ".join(planned) or "nothing")}
    changed = bool(deleted.get("directory") or deleted.get("s3_versions")
                   or deleted.get("indices"))
    return {"changed": changed, "deleted": deleted,
            "msg": "deleted %s" % (", ".join(planned) or "nothing")}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = clean(module.params, module.check_mode)
    except (VerifyFailure, OpenSearchFailure) as exc:
        module.fail_json(**exc.result())
    except Exception as exc:  # botocore: translate at the edge
        reason, hint = s3_reason(exc)
        module.fail_json(msg="cleanup: %s%s" % (reason, " (%s)" % hint if hint else ""))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
