"""The one place that builds each SDK client (kubernetes, boto3, opensearch-py).

Steps and gates receive clients; they never build them inline.
"""

from __future__ import annotations

from typing import Any

from runbooks.inventory import ClusterConfig


def kube_api(cluster: ClusterConfig) -> Any:
    """A kubernetes ApiClient for the cluster's kube context (and kubeconfig, if set)."""
    import urllib3
    from kubernetes import config

    client = config.new_client_from_config(
        config_file=cluster.kubeconfig or None, context=cluster.kube_context or None
    )
    if not client.configuration.verify_ssl:  # the kubeconfig says insecure-skip-tls-verify
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return client


def s3_client(cluster: ClusterConfig) -> Any:
    """A boto3 S3 client for the cluster's endpoint, with botocore's standard retries."""
    import boto3
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": cluster.s3_region,
        "config": Config(retries={"max_attempts": 5, "mode": "standard"},
                         s3={"addressing_style": "path"}),
    }
    if cluster.s3_endpoint:
        kwargs["endpoint_url"] = cluster.s3_endpoint
    if cluster.s3_access_key is not None and cluster.s3_secret_key is not None:
        kwargs["aws_access_key_id"] = cluster.s3_access_key.resolve()
        kwargs["aws_secret_access_key"] = cluster.s3_secret_key.resolve()
    return boto3.client("s3", **kwargs)


def opensearch_client(cluster: ClusterConfig) -> Any:
    """An opensearch-py client for the cluster's OpenSearch URL."""
    from opensearchpy import OpenSearch

    if cluster.opensearch_url is None:
        raise ValueError(f"{cluster.name}: wk_opensearch_url is not set in the inventory")
    auth = None
    if cluster.opensearch_auth is not None:
        auth = (cluster.opensearch_auth.username, cluster.opensearch_auth.password.resolve())
    return OpenSearch(
        hosts=[cluster.opensearch_url], http_auth=auth, timeout=30, max_retries=3,
        retry_on_timeout=True,
    )
