#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: opensearch_snapshot_repository
short_description: Ensure an OpenSearch snapshot repository exists and is usable
description:
  - Registers an C(fs) snapshot repository when it is missing (its location must lie under the
    node's C(path.repo); a relative location is resolved against it), then verifies it on every
    node.
  - An existing repository with another type or location is never changed (snapshots already
    in it would be orphaned); the module fails and says which settings it found.
  - C(changed) is true only when the repository was missing. Check mode reports what it would
    register and changes nothing.
version_added: 0.1.0
author: watchkeeper maintainers
extends_documentation_fragment:
  - watchkeeper.platform.opensearch
options:
  repository:
    description: Repository name.
    type: str
    required: true
  type:
    description: Repository type.
    type: str
    choices: [fs]
    default: fs
  location:
    description: Directory of an C(fs) repository; relative to C(path.repo) unless absolute.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Ensure the snapshot repository
  watchkeeper.platform.opensearch_snapshot_repository:
    url: http://opensearch:9200
    repository: watchkeeper
    location: watchkeeper
"""

RETURN = r"""
repository:
  description: Name, type and settings of the repository after the task.
  type: dict
  returned: always
verified_nodes:
  description: Node names that verified access to the repository.
  type: list
  returned: when not in check mode
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.opensearch_api import (
    CONNECTION_SPEC,
    OpenSearchFailure,
    call,
    connect,
    not_found,
)

ARGUMENT_SPEC = dict(
    CONNECTION_SPEC,
    repository=dict(type="str", required=True),
    type=dict(type="str", choices=["fs"], default="fs"),
    location=dict(type="str", required=True),
)


def ensure(client, params, check_mode):
    """Register the repository when missing; refuse to change an existing one."""
    name = params["repository"]
    wanted = {"type": params["type"], "settings": {"location": params["location"]}}
    try:
        current = call("GET _snapshot/%s" % name, client.snapshot.get_repository,
                       repository=name).get(name)
    except OpenSearchFailure as exc:
        if not not_found(exc):
            raise
        current = None
    result = {"changed": False, "repository": dict(wanted, name=name)}
    if current is not None:
        location = (current.get("settings") or {}).get("location")
        if current.get("type") != wanted["type"] or location != params["location"]:
            raise OpenSearchFailure(
                "repository %s exists as type %s with location %s, not %s at %s"
                % (name, current.get("type"), location, wanted["type"], params["location"]),
                "pass -e repository_location=%s to use it as it is, or choose another"
                " repository name; watchkeeper never re-points a repository that holds"
                " snapshots" % location)
        result["msg"] = "repository %s exists (%s, location %s)" % (name, wanted["type"],
                                                                     location)
    else:
        result["changed"] = True
        result["diff"] = {"before": {}, "after": {name: wanted},
                          "after_header": "_snapshot/%s" % name}
        if check_mode:
            result["msg"] = "would register repository %s (%s, location %s)" % (
                name, wanted["type"], params["location"])
            return result
        call("PUT _snapshot/%s" % name, client.snapshot.create_repository, repository=name,
             body=wanted)
        result["msg"] = "registered repository %s (%s, location %s)" % (
            name, wanted["type"], params["location"])
    if not check_mode:
        verified = call("POST _snapshot/%s/_verify" % name, client.snapshot.verify_repository,
                        repository=name)
        result["verified_nodes"] = sorted(n.get("name", k)
                                          for k, n in (verified.get("nodes") or {}).items())
        result["msg"] += "; verified on %d node(s)" % len(result["verified_nodes"])
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = ensure(connect(module.params), module.params, module.check_mode)
    except OpenSearchFailure as exc:
        module.fail_json(**exc.result())
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
