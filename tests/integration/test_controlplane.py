"""What the runbooks rely on from the Kubernetes API, against a real etcd + kube-apiserver:
server-side dry run predicts without changing, and the `watchkeeper` ServiceAccount of the lab's
GitOps tree gets what its Role grants and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from watchkeeper_lab.controlplane import ControlPlane
from watchkeeper_lab.platform import WATCHKEEPER_RBAC

from tests.conftest import NAMESPACE


def admin(apiserver: ControlPlane) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(apiserver.kubeconfig),
                                         context="cluster-a")


def test_server_side_dry_run_returns_the_prediction_and_changes_nothing(
    apiserver: ControlPlane,
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(admin(apiserver))
    name = "thanos-receive-hashring-dry-run"
    core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name), data={"hashrings.json": "[old]"}))
    predicted = core.patch_namespaced_config_map(
        name, NAMESPACE, {"data": {"hashrings.json": "[new]"}}, dry_run="All")
    assert predicted.data["hashrings.json"] == "[new]"
    assert core.read_namespaced_config_map(name, NAMESPACE).data["hashrings.json"] == "[old]"


@pytest.fixture(scope="module")
def watchkeeper_api(apiserver: ControlPlane) -> Any:
    """An API client authenticated as the lab's `watchkeeper` ServiceAccount."""
    from kubernetes import client, utils

    api = admin(apiserver)
    for manifest in yaml.safe_load_all(WATCHKEEPER_RBAC):
        try:
            utils.create_from_dict(api, manifest, namespace=NAMESPACE)
        except utils.FailToCreateError as exc:
            if not all(e.status == 409 for e in exc.api_exceptions):
                raise
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        "watchkeeper", NAMESPACE, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    ).status.token
    configuration = client.Configuration()
    configuration.host = apiserver.server
    configuration.verify_ssl = False
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def status_of(call: Any) -> int:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
        return 200
    except ApiException as exc:
        return int(exc.status)


def test_watchkeeper_service_account_gets_only_what_its_role_grants(watchkeeper_api: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(watchkeeper_api)
    apps = client.AppsV1Api(watchkeeper_api)
    leases = client.CoordinationV1Api(watchkeeper_api)
    # Granted in its namespace.
    assert status_of(lambda: core.list_namespaced_pod(NAMESPACE)) == 200
    assert status_of(lambda: core.list_namespaced_config_map(NAMESPACE)) == 200
    assert status_of(lambda: apps.list_namespaced_stateful_set(NAMESPACE)) == 200
    assert status_of(lambda: leases.create_namespaced_lease(NAMESPACE, client.V1Lease(
        metadata=client.V1ObjectMeta(name="probe"), spec=client.V1LeaseSpec()))) == 200
    # Refused: secrets, deleting, other namespaces, cluster scope.
    assert status_of(lambda: core.list_namespaced_secret(NAMESPACE)) == 403
    assert status_of(lambda: core.delete_namespaced_config_map("x", NAMESPACE)) == 403
    assert status_of(lambda: apps.delete_namespaced_stateful_set("x", NAMESPACE)) == 403
    assert status_of(lambda: core.list_namespaced_pod("monitoring-b")) == 403
    assert status_of(lambda: core.list_node()) == 403
