"""The runbooks' Python side gets its SDK clients (kubernetes, boto3, opensearch-py) here.

Each is built by the one builder of that SDK, in the collection's module_utils (kube.py,
s3.py, opensearch_api.py), which the Ansible modules use as well: one place for each client's
settings (retries, addressing, TLS). Steps and gates never build a client inline.
"""

from __future__ import annotations

from typing import Any

from runbooks import platform
from runbooks.inventory import ClusterConfig


def kube_api(cluster: ClusterConfig) -> Any:
    """A kubernetes ApiClient for the cluster's kube context (and kubeconfig, if set), built
    by module_utils/kube.py as the modules build theirs."""
    return platform.kube.connect({"kubeconfig": cluster.kubeconfig or None,
                                  "context": cluster.kube_context or None})


def s3_client(cluster: ClusterConfig) -> Any:
    """A boto3 S3 client for the cluster's endpoint: built by the collection's
    module_utils/s3.py, the same builder the modules use (one place for its settings)."""
    params: dict[str, Any] = {"s3_endpoint": str(cluster.s3_endpoint or ""),
                              "s3_region": cluster.s3_region}
    if cluster.s3_access_key is not None and cluster.s3_secret_key is not None:
        params["s3_access_key"] = cluster.s3_access_key.resolve()
        params["s3_secret_key"] = cluster.s3_secret_key.resolve()
    return platform.s3.connect(params)


def opensearch_client(cluster: ClusterConfig) -> Any:
    """An opensearch-py client for the cluster's OpenSearch URL, built by
    module_utils/opensearch_api.py as the modules build theirs."""
    if cluster.opensearch_url is None:
        raise ValueError(f"{cluster.name}: wk_opensearch_url is not set in the inventory")
    params: dict[str, Any] = {"url": str(cluster.opensearch_url), "request_timeout": 30.0}
    if cluster.opensearch_auth is not None:
        params["username"] = cluster.opensearch_auth.username
        params["password"] = cluster.opensearch_auth.password.resolve()
    return platform.opensearch_api.connect(params)


def agent_credentials(cluster: ClusterConfig) -> tuple[str | None, str | None]:
    """(username, password) for the cluster's agent endpoints (wk_agent_auth, basic auth),
    else (None, None): the last two arguments of module_utils/promhttp.get, the reader the
    agent modules use for the agent's /-/ready and /metrics."""
    if cluster.agent_auth is None:
        return None, None
    return cluster.agent_auth.username, cluster.agent_auth.password.resolve()
