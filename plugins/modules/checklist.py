#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
# With a local connection the items run in the controller's worker (plugins/action/checklist.py);
# this module runs them on a target host otherwise, and carries the documentation.
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: checklist
short_description: Run operations checklist items for one cluster and return them as checks
description:
  - Runs the named items concurrently and returns one or more checks per item, each with a
    status (ok, warn, fail, skipped), evidence (values and the query or API call) and a hint
    when not ok.
  - An endpoint the cluster does not declare gives a C(skipped) check with the reason, never
    a pass. A failed check does not fail the task (see checklist_verdict).
  - Read-only; the only file written is the S3 usage record under I(state_dir).
version_added: 0.1.0
author: watchkeeper maintainers
options:
  items:
    description:
      - Items to run. Daily C(argocd), C(agent_targets), C(remote_write), C(grafana), C(disk);
        weekly C(s3), C(tsdb), C(wal), C(alerts), C(log_indices); monthly C(versions),
        C(charts), C(patches), C(resources), C(backup_age).
    type: list
    elements: str
    required: true
  cluster:
    description: The cluster's name (its C(cluster) external label).
    type: str
    required: true
  host:
    description: The inventory host name (ArgoCD destinations may use either name).
    type: str
  role:
    description: C(workload) or C(observability); items that belong to the other role are silent.
    type: str
    default: workload
  kubeconfig:
    description: Kubeconfig file.
    type: str
  context:
    description: Kube context of the cluster (ArgoCD Applications, PersistentVolumes, pods).
    type: str
  namespace:
    description: The platform's namespace.
    type: str
    default: monitoring
  argocd_namespace:
    description: Namespace of the ArgoCD Applications.
    type: str
    default: argocd
  git_url:
    description: The GitOps repository as watchkeeper reaches it (C(charts); default each Application's repoURL).
    type: str
  agent_url:
    description: Prometheus Agent URL.
    type: str
  agent_username:
    description: Basic auth user of the agent.
    type: str
  agent_password:
    description: Basic auth password of the agent.
    type: str
  first:
    description: The first remote_write_sample result (item remote_write).
    type: dict
  second:
    description: The second remote_write_sample result (item remote_write).
    type: dict
  grafana_url:
    description: Grafana URL.
    type: str
  grafana_username:
    description: Grafana user (a viewer).
    type: str
  grafana_password:
    description: Grafana password.
    type: str
  data_volume_paths:
    description: Data volume directories to measure, besides the discovered PersistentVolumes.
    type: list
    elements: str
    default: []
  query_url:
    description: Thanos Query URL.
    type: str
  alertmanager_url:
    description: Alertmanager URL.
    type: str
  prometheus_url:
    description: A full Prometheus server's URL.
    type: str
  prometheus_tsdb_path:
    description: That server's TSDB directory (its WAL is measured).
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
  log_index_pattern:
    description: Pattern of the log indices whose cleanup is checked.
    type: str
    default: logs-*
  s3_endpoint:
    description: S3 endpoint (empty for AWS).
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
  buckets:
    description: Buckets whose usage and growth are checked.
    type: list
    elements: str
    default: []
  state_dir:
    description: Where the S3 usage records of earlier runs are kept (growth).
    type: str
  textfile_dir:
    description: A textfile-collector directory also searched for backup verification metrics.
    type: str
  versions:
    description: Running component versions (wk_versions).
    type: dict
    default: {}
  versions_latest:
    description: Latest known version per component.
    type: dict
    default: {}
  versions_latest_file:
    description: A YAML file mapping component to latest known version.
    type: str
  resource_window:
    description: PromQL range of the resource usage analysis.
    type: str
    default: 1d
  thresholds:
    description: Checklist thresholds (see module_utils/checklist.py DEFAULTS).
    type: dict
    default: {}
  timeout:
    description: Seconds per HTTP or API call.
    type: float
    default: 10.0
  verdict:
    description:
      - This is the checklist's last task - fail when any check of it or of I(earlier) failed
        (or warned, with I(strict)), naming them.
    type: bool
    default: false
  earlier:
    description: The registered results of the checklist's earlier tasks (with I(verdict)).
    type: list
    elements: dict
    default: []
  strict:
    description: With I(verdict), a warning fails too.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Daily checks
  watchkeeper.platform.checklist:
    items: [argocd, agent_targets, grafana, disk]
    cluster: k8s-cluster-01
    context: k8s-cluster-01
    namespace: monitoring
    agent_url: http://prometheus-agent.monitoring.svc:9090
"""

RETURN = r"""
checks:
  description: List of C(name), C(status) (ok, warn, fail, skipped), C(evidence), C(hint).
  type: list
  returned: always
worst:
  description: The worst status of the checks.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist import worst
from ansible_collections.watchkeeper.platform.plugins.module_utils.checklist_probe import (
    ARGUMENT_SPEC,
    run_items,
    verdict_over,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        checks = run_items(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    failed, message = verdict_over(module.params, checks)
    if failed and module.params["verdict"]:
        module.fail_json(msg=message, checks=checks, worst=worst(checks))
    module.exit_json(changed=False, checks=checks, worst=worst(checks), msg=message)


if __name__ == "__main__":
    main()
