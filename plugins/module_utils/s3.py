# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""S3 for the collection's modules: the one place a module builds a boto3 client, and the
connection options every S3 module shares.

(The runbooks' Python side builds its clients in runbooks/clients.py; modules run in Ansible's
module runtime and receive the endpoint and credentials as options, so they build theirs here.)
"""

from __future__ import absolute_import, annotations, division, print_function

#: Connection options of every S3 module (compose with each module's own spec).
S3_SPEC = dict(
    s3_endpoint=dict(type="str"),
    s3_region=dict(type="str", default="us-east-1"),
    s3_access_key=dict(type="str", no_log=True),
    s3_secret_key=dict(type="str", no_log=True),
)


def connect(params):
    """A boto3 S3 client for the module's S3 options (path-style, standard retries)."""
    import boto3
    from botocore.config import Config

    kwargs = dict(region_name=params.get("s3_region") or "us-east-1",
                  config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                s3={"addressing_style": "path"},
                                # Every backup carries its own sha256 per file (manifests),
                                # verified on restore: the SDK's extra CRC32 pass per upload
                                # is only sent where S3 requires it.
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required"))
    if params.get("s3_endpoint"):
        kwargs["endpoint_url"] = params["s3_endpoint"]
    if params.get("s3_access_key") and params.get("s3_secret_key"):
        kwargs["aws_access_key_id"] = params["s3_access_key"]
        kwargs["aws_secret_access_key"] = params["s3_secret_key"]
    return boto3.client("s3", **kwargs)


def thanos_blocks(client, bucket, prefix=""):
    """Every block in the bucket with its meta.json: {ulid: meta}. A block without meta.json
    is incomplete (Thanos uploads meta.json last) and is left out."""
    import json

    blocks = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/meta.json") and key.count("/") == prefix.count("/") + 1:
                body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                blocks[key[len(prefix):].split("/", 1)[0]] = json.loads(body)
    return blocks
