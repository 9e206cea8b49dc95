#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
from __future__ import absolute_import, annotations, division, print_function

DOCUMENTATION = r"""
---
module: backup_verify_serve
short_description: Serve restored data with a real Prometheus or Thanos and check its content
description:
  - C(engine=prometheus) - starts the prometheus program on I(tsdb_dir) (a restored TSDB) on a
    free loopback port, with a long retention (a short one would delete the old blocks at
    start).
  - C(engine=thanos) - starts C(thanos store) over the restored block copies (I(bucket) +
    I(prefix)) and C(thanos query) over that store, both on free loopback ports.
  - Asks the server's HTTP API for the series and the time range of the samples (a
    C(count) range query) and judges them against I(blocks) - the backup's time range - then
    stops every process it started, also on failure. Fails naming each difference.
  - Check mode says what it would start and check; nothing starts.
version_added: 0.1.0
author: watchkeeper maintainers
options:
  engine:
    description: What serves the data.
    type: str
    choices: [prometheus, thanos]
    required: true
  binary:
    description: The prometheus or thanos program.
    type: str
    required: true
  scratch_dir:
    description: Scratch directory for configuration, data and logs (must exist or is created).
    type: path
    required: true
  tsdb_dir:
    description: The restored TSDB (engine=prometheus).
    type: path
  blocks:
    description: The backup's blocks - a list of {min_time, max_time} (a backup-tsdb manifest's)
      or a dict ulid -> {minTime, maxTime} (restore-bucket's selection).
    type: raw
    required: true
  s3_endpoint:
    description: S3 endpoint URL (engine=thanos).
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
    description: Bucket holding the restored blocks (engine=thanos).
    type: str
  prefix:
    description: Prefix of the restored blocks in I(bucket) (engine=thanos).
    type: str
    default: ""
  ready_timeout:
    description: Seconds to wait for each server to be ready.
    type: float
    default: 180
"""

EXAMPLES = r"""
- name: Serve the restored TSDB and check it
  watchkeeper.platform.backup_verify_serve:
    engine: prometheus
    binary: /usr/bin/prometheus
    scratch_dir: /var/tmp/watchkeeper-verify/RUN/observability/prometheus
    tsdb_dir: /var/tmp/watchkeeper-verify/RUN/observability/tsdb
    blocks: "{{ wk_tsdb_restore.blocks }}"
"""

RETURN = r"""
series:
  description: Series the restored data holds in the backup's time range.
  type: int
  returned: when not in check mode
first_sample:
  description: First instant with samples (RFC 3339).
  type: str
  returned: when not in check mode
last_sample:
  description: Last instant with samples (RFC 3339).
  type: str
  returned: when not in check mode
evidence:
  description: One line for the journal's check.
  type: str
  returned: always
"""

import os
from urllib.parse import urlparse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.watchkeeper.platform.plugins.module_utils.backup_verify import (
    Server,
    VerifyFailure,
    bounds,
    free_port,
    iso,
    served_content,
    wait_ready,
)

ARGUMENT_SPEC = dict(
    engine=dict(type="str", choices=["prometheus", "thanos"], required=True),
    binary=dict(type="str", required=True),
    scratch_dir=dict(type="path", required=True),
    tsdb_dir=dict(type="path"),
    blocks=dict(type="raw", required=True),
    s3_endpoint=dict(type="str"),
    s3_region=dict(type="str", default="us-east-1"),
    s3_access_key=dict(type="str", no_log=True),
    s3_secret_key=dict(type="str", no_log=True),
    bucket=dict(type="str"),
    prefix=dict(type="str", default=""),
    ready_timeout=dict(type="float", default=180.0),
)


def start_prometheus(p, servers):
    scratch = p["scratch_dir"]
    config = os.path.join(scratch, "prometheus.yml")
    with open(config, "w") as handle:
        handle.write("global: {scrape_interval: 1h}\n")  # no scrape target: only the restore
    port = free_port()
    server = Server("prometheus", [
        p["binary"], "--config.file=" + config, "--storage.tsdb.path=" + p["tsdb_dir"],
        "--web.listen-address=127.0.0.1:%d" % port,
        # The default 15d retention would delete the restored blocks older than that at start.
        "--storage.tsdb.retention.time=100y"], os.path.join(scratch, "prometheus.log"))
    servers.append(server.start())
    url = "http://127.0.0.1:%d" % port
    wait_ready(server, url + "/-/ready", p["ready_timeout"], "TSDB %s" % p["tsdb_dir"])
    return url, "prometheus on 127.0.0.1:%d" % port


def objstore_yaml(p):
    endpoint = urlparse(p["s3_endpoint"] or "https://s3.%s.amazonaws.com" % p["s3_region"])
    lines = ["type: S3", "prefix: %s" % (p["prefix"] or "").strip("/"), "config:",
             "  bucket: %s" % p["bucket"], "  endpoint: %s" % endpoint.netloc,
             "  region: %s" % p["s3_region"], "  insecure: %s" % (
                 "true" if endpoint.scheme == "http" else "false"),
             "  bucket_lookup_type: path"]
    if p["s3_access_key"] and p["s3_secret_key"]:
        lines += ["  access_key: %s" % p["s3_access_key"],
                  "  secret_key: %s" % p["s3_secret_key"]]
    return "\n".join(lines) + "\n"


def start_thanos(p, servers):
    scratch = p["scratch_dir"]
    objstore = os.path.join(scratch, "objstore.yml")
    fd = os.open(objstore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the S3 keys
    with os.fdopen(fd, "w") as handle:
        handle.write(objstore_yaml(p))
    store_http, store_grpc = free_port(), free_port()
    store = Server("thanos store", [
        p["binary"], "store", "--objstore.config-file=" + objstore,
        "--data-dir=" + os.path.join(scratch, "store-data"),
        "--http-address=127.0.0.1:%d" % store_http, "--grpc-address=127.0.0.1:%d" % store_grpc,
        "--consistency-delay=0s", "--sync-block-duration=1h"],
        os.path.join(scratch, "thanos-store.log"))
    servers.append(store.start())
    # The store is ready once its first sync of the bucket's blocks is done.
    wait_ready(store, "http://127.0.0.1:%d/-/ready" % store_http, p["ready_timeout"],
               "block sync of s3://%s/%s" % (p["bucket"], p["prefix"]))
    query_http, query_grpc = free_port(), free_port()
    query = Server("thanos query", [
        p["binary"], "query", "--http-address=127.0.0.1:%d" % query_http,
        "--grpc-address=127.0.0.1:%d" % query_grpc, "--endpoint=127.0.0.1:%d" % store_grpc,
        "--query.replica-label=receive_replica", "--query.replica-label=replica"],
        os.path.join(scratch, "thanos-query.log"))
    servers.append(query.start())
    url = "http://127.0.0.1:%d" % query_http
    wait_ready(query, url + "/-/ready", p["ready_timeout"], "the store endpoint")
    wait_for_store(query, url, p["ready_timeout"])
    return url, "thanos store 127.0.0.1:%d + query 127.0.0.1:%d" % (store_grpc, query_http)


def wait_for_store(server, url, deadline_s):
    """Query answers before it has discovered its store; wait until it lists it."""
    import time

    from ansible_collections.watchkeeper.platform.plugins.module_utils.backup_verify import (
        http_json,
    )

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        stores = http_json(url + "/api/v1/stores") or {}
        if any(stores.values()):
            return
        time.sleep(1.0)
    raise VerifyFailure("thanos query at %s lists no store after %.0f s" % (url, deadline_s),
                        "read %s" % server.log_path)


def verify(p, check_mode):
    low, high, _, _ = bounds(p["blocks"])
    where = p["tsdb_dir"] if p["engine"] == "prometheus" else "s3://%s/%s" % (
        p["bucket"], p["prefix"])
    if check_mode:
        return {"changed": False, "evidence": "would start %s on %s and check series > 0 and"
                " samples within %s .. %s" % (p["engine"], where, iso(low), iso(high))}
    os.makedirs(p["scratch_dir"], exist_ok=True)
    servers = []
    try:
        start = start_prometheus if p["engine"] == "prometheus" else start_thanos
        url, what = start(p, servers)
        content = served_content(url, p["blocks"])
    finally:
        for server in reversed(servers):
            server.stop()
    evidence = "%s over %s: %d series, samples %s .. %s (backup %s .. %s; step %ds)" % (
        what, where, content["series"], iso(content["first"]), iso(content["last"]), iso(low),
        iso(high), content["step"])
    result = {"changed": False, "series": content["series"],
              "first_sample": iso(content["first"]), "last_sample": iso(content["last"]),
              "evidence": evidence}
    if content["problems"]:
        raise VerifyFailure("%s; %s" % (evidence, "; ".join(content["problems"])),
                            "the restored data does not hold what the backup says: restore it"
                            " by hand and inspect it", **result)
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = verify(module.params, module.check_mode)
    except VerifyFailure as exc:
        failure = exc.result()
        failure["evidence"] = exc.message
        module.fail_json(**failure)
    result["msg"] = result["evidence"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
