"""Diagnostics and the emergency runbooks remote-write-failing and metrics-missing against the
real lab. Faults injected into the real programs: an agent restarted onto a closed remote-write
port (its ConfigMap patched), a stopped canary scrape target, blocked ports (a listening
socket that never answers, a closed port) and data volumes on a small tmpfs the test mounts
(filled by a dump; holding blocks the shipper did not upload). Each diagnostic must name the
right cause first; the emergency runbooks must restore delivery (without --yes, change nothing)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from watchkeeper_lab import Lab, process, topology

from tests.lab.helpers import firewalled, wait_jobs_stale
from tests.lab.test_checklists import canary_health, inventory_with
from tests.lab.test_kubernetes import is_ready, kubectl
from tests.lab.test_lab import poll
from tests.lab.test_receiver_agent_health import (
    AGENT_CM,
    AGENT_NS,
    agent_config,
    agent_restored,  # noqa: F401  (fixture)
    agent_uid,
    config_on_disk,
    core,
    run,
    step,
)

pytestmark = pytest.mark.lab
CANARY = f"canary-{AGENT_NS}"


def playbook_steps(journal: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in journal["steps"] if s["phase"] == "playbook"]


def first_step(journal: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in playbook_steps(journal) if s["status"] != "skipped")


def restart_agent_pod(lab: Lab) -> None:
    uid = agent_uid(lab)
    core(lab).delete_namespaced_pod("prometheus-agent-0", AGENT_NS)

    def recreated_and_ready() -> bool:
        try:
            pod = core(lab).read_namespaced_pod("prometheus-agent-0", AGENT_NS)
        except ApiException as exc:  # between the old pod's removal and the new one
            assert exc.status == 404, exc
            return False
        return bool(pod.metadata.uid != uid and is_ready(pod))

    poll("the agent recreated and Ready", lambda: recreated_and_ready() or None, 120, 1)


def point_agent_at_closed_port(lab: Lab, original: str) -> str:
    """The fault: the ConfigMap's remote-write URL on a port nothing listens on, loaded by a
    restart (Prometheus reads its file only then)."""
    right = f"http://{lab.addresses.receiver(0)}:19291/api/v1/receive"
    wrong = f"http://{lab.addresses.receiver(0)}:19299/api/v1/receive"
    assert right in original
    broken = original.replace(right, wrong)
    core(lab).patch_namespaced_config_map(AGENT_CM, AGENT_NS, {"data": {"prometheus.yml": broken}})
    poll("the wrong config on disk", lambda: config_on_disk(lab) == broken, 60, 0.5)
    restart_agent_pod(lab)
    return wrong


def test_diagnostics_find_nothing_wrong_on_a_healthy_lab(lab: Lab, tmp_path: Path) -> None:
    result, journal = run(lab, tmp_path, "diagnose-remote-write", AGENT_NS)
    assert result.returncode == 0, result.stdout
    assert first_step(journal)["message"].startswith("most likely: nothing wrong")
    result, journal = run(lab, tmp_path, "diagnose-missing-metrics", AGENT_NS)
    assert result.returncode == 0, result.stdout
    names = [c["name"] for c in first_step(journal)["checks"]]
    assert f"{AGENT_NS} job canary" in names and f"{AGENT_NS} job prometheus-agent" in names
    result, journal = run(lab, tmp_path, "diagnose-receiver-connectivity", "observability")
    assert result.returncode == 0, result.stdout
    found = {c["name"]: c for c in first_step(journal)["checks"]}
    for i in range(topology.RECEIVERS):
        ip = lab.addresses.receiver(i)
        assert found[f"receiver {ip} gRPC"]["status"] == "ok"
        assert found[f"receiver {ip} remote-write"]["status"] == "ok"
        assert found[f"receiver {ip} ready"]["status"] == "ok"


def test_a_wrong_remote_write_url_is_named_first_and_remote_write_failing_repoints_it(
    lab: Lab, tmp_path: Path, agent_restored: str  # noqa: F811
) -> None:
    original = agent_restored
    wrong = point_agent_at_closed_port(lab, original)
    # A cluster whose agent is not an ArgoCD Application the runbook may re-sync: the URL is
    # re-pointed imperatively (the GitOps case is the re-sync tests below).
    imperative = inventory_with(lab, tmp_path, AGENT_NS, wk_agent_application="")

    result, journal = run(lab, tmp_path, "diagnose-remote-write", AGENT_NS)
    assert result.returncode == 1, result.stdout
    diag = first_step(journal)
    top = diag["checks"][0]
    assert top["name"] == "wrong remote-write URL", diag["checks"]
    assert wrong in top["evidence"] and "connection refused" in top["evidence"]
    assert diag["message"].startswith("most likely: wrong remote-write URL")
    assert any(c["name"] == f"endpoint {wrong}" and c["status"] == "fail"
               and "connection refused" in c["evidence"] for c in diag["checks"])

    result, journal = run(lab, tmp_path, "diagnose-network", AGENT_NS)
    assert result.returncode == 1, result.stdout
    matrix = first_step(journal)["message"]
    assert f"remote-write {wrong}" in matrix and "connection refused" in matrix

    # Without --yes: check mode, the diagnosis and what would be done; nothing changes.
    uid = agent_uid(lab)
    result, journal = run(lab, tmp_path, "remote-write-failing", AGENT_NS, inventory=imperative)
    assert result.returncode == 1, result.stdout  # a fault found in check mode
    assert journal["check_mode"] is True
    messages = " | ".join(s["message"] for s in playbook_steps(journal))
    assert "most likely: wrong remote-write URL" in messages
    assert f"would patch {AGENT_NS}/{AGENT_CM}:prometheus.yml" in messages
    assert "would delete pod" in messages
    assert wrong in agent_config(lab) and agent_uid(lab) == uid

    result, journal = run(lab, tmp_path, "remote-write-failing", AGENT_NS, "--yes",
                          inventory=imperative)
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert agent_config(lab) == original  # only the URL changed, back to the inventory's
    assert agent_uid(lab) != uid
    changed = [s for s in playbook_steps(journal) if s["status"] == "changed"]
    assert any(f"{wrong} -> http://{lab.addresses.receiver(0)}:19291" in s["message"]
               for s in changed), changed
    assert any(s["message"].startswith("restarted") for s in changed), changed
    assert playbook_steps(journal)[-1]["message"].startswith("most likely: nothing wrong")
    assert step(journal, "post-gate")["status"] == "ok"


def test_metrics_missing_names_the_undelivering_agent_and_restores_delivery(
    lab: Lab, tmp_path: Path, agent_restored: str  # noqa: F811
) -> None:
    original = agent_restored
    point_agent_at_closed_port(lab, original)
    wait_jobs_stale(lab, AGENT_NS, 15)  # stale_seconds below: the newest samples age in Query
    result, journal = run(lab, tmp_path, "diagnose-missing-metrics", AGENT_NS,
                          "-e", "stale_seconds=15")
    assert result.returncode == 1, result.stdout
    diag = first_step(journal)
    assert diag["message"].startswith(f"most likely: {AGENT_NS} job "), diag["message"]
    for check in diag["checks"]:
        assert check["status"] == "fail" and "missing since" in check["evidence"], check
        assert "the agent does not deliver" in check["evidence"]
        assert f"every expected job of {AGENT_NS} is missing" in check["evidence"]

    result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "--yes",
                          "-e", "stale_seconds=15")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert agent_config(lab) == original
    assert step(journal, "post-gate")["status"] == "ok"
    assert "up = 1" in step(journal, "post-gate")["message"]
    # The ConfigMap had drifted from git (edited by hand): re-synced from git, then restarted
    # because the agent still ran the edited file.
    changed = {s["name"]: s["message"] for s in playbook_steps(journal)
               if s["status"] == "changed"}
    resync = next(m for n, m in changed.items() if n.startswith("Re-sync"))
    assert resync.startswith(f"re-synced ConfigMap/{AGENT_CM} from file://"), resync
    assert "19299" in resync and "no drift left" in resync
    assert any(m.startswith("restarted") for m in changed.values()), changed


def replicas(lab: Lab) -> int:
    from kubernetes import client

    from tests.lab.test_kubernetes import api

    sts = client.AppsV1Api(api(lab)).read_namespaced_stateful_set("prometheus-agent", AGENT_NS)
    return int(sts.spec.replicas or 0)


@pytest.fixture
def scaled_back(lab: Lab) -> Iterator[None]:
    """The agent at one replica and Ready again, whatever the test did."""
    yield
    if replicas(lab) != 1:
        kubectl(lab, "-n", AGENT_NS, "scale", "statefulset/prometheus-agent", "--replicas=1")
    poll("the agent Ready", lambda: any(is_ready(p) for p in core(lab).list_namespaced_pod(
        AGENT_NS).items), 180, 1)


def test_an_agent_scaled_to_zero_by_hand_is_re_synced_from_git(
    lab: Lab, tmp_path: Path, scaled_back: None
) -> None:
    kubectl(lab, "-n", AGENT_NS, "scale", "statefulset/prometheus-agent", "--replicas=0")
    poll("the agent gone", lambda: not core(lab).list_namespaced_pod(AGENT_NS).items, 120, 1)
    wait_jobs_stale(lab, AGENT_NS, 15)  # stale_seconds below: the newest samples age in Query

    result, journal = run(lab, tmp_path, "diagnose-remote-write", AGENT_NS)
    assert result.returncode == 1
    assert first_step(journal)["message"].startswith(
        "most likely: agent: StatefulSet k8s-cluster-01/prometheus-agent is scaled to 0")

    # Without --yes: the drift and the re-sync it would do; nothing changes.
    result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "-e", "stale_seconds=15")
    assert result.returncode == 1, result.stdout  # a fault found in check mode
    resync = next(s for s in playbook_steps(journal) if s["name"].startswith("Re-sync"))
    assert resync["status"] == "changed", resync
    assert resync["message"].startswith("would re-sync StatefulSet/prometheus-agent from")
    assert "- replicas: 0 | + replicas: 1" in resync["message"]
    assert replicas(lab) == 0

    result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "--yes",
                          "-e", "stale_seconds=15")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert replicas(lab) == 1
    resync = next(s for s in playbook_steps(journal) if s["name"].startswith("Re-sync"))
    assert resync["message"].startswith("re-synced StatefulSet/prometheus-agent"), resync
    assert "(argocd)" in resync["message"]  # the lab's ArgoCD ran the sync
    assert step(journal, "post-gate")["status"] == "ok"
    assert "up = 1" in step(journal, "post-gate")["message"]


def test_apply_mode_re_syncs_by_server_side_apply_of_the_rendered_path(
    lab: Lab, tmp_path: Path, scaled_back: None
) -> None:
    """For clusters whose ArgoCD cannot be asked: the Application's path rendered from git
    (its Kustomization inflating the agent's chart) and applied with ArgoCD's field
    manager."""
    inventory = inventory_with(lab, tmp_path, AGENT_NS, wk_resync_mode="apply")
    kubectl(lab, "-n", AGENT_NS, "scale", "statefulset/prometheus-agent", "--replicas=0")
    poll("the agent gone", lambda: not core(lab).list_namespaced_pod(AGENT_NS).items, 120, 1)
    wait_jobs_stale(lab, AGENT_NS, 15)  # stale_seconds below: else nothing is found missing
    result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "--yes",
                          "-e", "stale_seconds=15", inventory=inventory)
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    resync = next(s for s in playbook_steps(journal) if s["name"].startswith("Re-sync"))
    assert resync["message"].startswith("re-synced StatefulSet/prometheus-agent"), resync
    assert "(apply)" in resync["message"]
    assert replicas(lab) == 1
    # Applied with ArgoCD's mark: ArgoCD still counts the objects as the Application's.
    sts = json.loads(kubectl(lab, "-n", AGENT_NS, "get", "statefulset/prometheus-agent",
                             "-o", "json"))
    assert sts["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] == \
        f"{AGENT_NS}-prometheus-agent:apps/StatefulSet:{AGENT_NS}/prometheus-agent"


UNWATCHED = "argocd-unwatched"


@pytest.fixture
def unwatched_app(lab: Lab) -> Iterator[str]:
    """A copy of the agent's Application in a namespace no ArgoCD controller watches (the
    controller manages its own namespace only)."""
    from tests.lab.test_checklists import custom_objects

    api = custom_objects(lab)
    name = f"{AGENT_NS}-prometheus-agent"
    original = api.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd",
                                                "applications", name)
    try:
        lab.core_api().create_namespace({"metadata": {"name": UNWATCHED}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    api.create_namespaced_custom_object("argoproj.io", "v1alpha1", UNWATCHED, "applications", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": UNWATCHED},
        "spec": {**original["spec"], "syncPolicy": None}})
    try:
        yield name
    finally:
        api.delete_namespaced_custom_object("argoproj.io", "v1alpha1", UNWATCHED,
                                            "applications", name)


def test_argocd_mode_fails_naming_the_application_when_no_controller_syncs_it(
    lab: Lab, tmp_path: Path, scaled_back: None, unwatched_app: str
) -> None:
    """Asking for a sync that no controller runs must fail clearly (and say how to re-sync
    without one), never report a re-sync that did not happen."""
    inventory = inventory_with(lab, tmp_path, AGENT_NS, wk_resync_mode="argocd",
                               wk_argocd_namespace=UNWATCHED)
    kubectl(lab, "-n", AGENT_NS, "scale", "statefulset/prometheus-agent", "--replicas=0")
    poll("the agent gone", lambda: not core(lab).list_namespaced_pod(AGENT_NS).items, 120, 1)
    wait_jobs_stale(lab, AGENT_NS, 5)  # stale_seconds below: else nothing is found missing
    result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "--yes",
                          "-e", "stale_seconds=5", "-e", "resync_timeout=10",
                          inventory=inventory)
    assert result.returncode != 0
    failed = next(s for s in playbook_steps(journal) if s["status"] == "failed")
    assert failed["name"].startswith("Re-sync"), failed
    assert f"ArgoCD did not complete the sync of {unwatched_app}" in failed["message"]
    assert replicas(lab) == 0  # nothing pretended


def stop_canary(lab: Lab) -> None:
    raw = json.loads((lab.dir / "state.json").read_text())["processes"][CANARY]
    process.stop(process.Record(int(raw["pid"]), int(raw["start_ticks"]), str(raw["argv0"])),
                 grace_seconds=10)


def test_a_stopped_scrape_target_is_named_with_since_when_and_not_restarted_away(
    lab: Lab, tmp_path: Path
) -> None:
    uid = agent_uid(lab)
    stop_canary(lab)
    try:
        poll("the agent to see its canary down", lambda: canary_health(lab) == "down", 60, 1)
        time.sleep(10)  # a few scrapes with up = 0 reach Query
        result, journal = run(lab, tmp_path, "diagnose-missing-metrics", AGENT_NS)
        assert result.returncode == 1, result.stdout
        top = first_step(journal)["checks"][0]
        assert top["name"] == f"{AGENT_NS} job canary" and top["status"] == "fail", top
        assert "scrape target down since 20" in top["evidence"]
        others = {c["name"]: c for c in first_step(journal)["checks"]}
        assert others[f"{AGENT_NS} job prometheus-agent"]["status"] == "ok"

        # The agent delivers: nothing to re-point or restart; the run names the target.
        result, journal = run(lab, tmp_path, "metrics-missing", AGENT_NS, "--yes",
                              "-e", "verify_timeout=5")
        assert result.returncode == 1, result.stdout
        assert agent_uid(lab) == uid
        assert not [s for s in playbook_steps(journal) if s["status"] == "changed"]
        assert "scrape target down" in journal["message"] + " ".join(
            s["message"] for s in playbook_steps(journal))
    finally:
        lab.up()
        poll("the agent to see its canary up again", lambda: canary_health(lab) == "up", 60, 1)
    time.sleep(10)
    result, journal = run(lab, tmp_path, "diagnose-missing-metrics", AGENT_NS)
    assert result.returncode == 0, (result.stdout, first_step(journal)["message"])


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel (backlog) and never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_blocked_ports_are_named_in_the_network_matrix(lab: Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(lab.inventory_dir, inventory)
    closed = f"{lab.addresses.receiver(0)}:10909"
    with silent_port() as port:
        hung = f"http://127.0.0.1:{port}/api/v1/receive"
        workload = inventory / "host_vars" / f"{topology.CLUSTERS[1]}.yml"
        values = yaml.safe_load(workload.read_text())
        values["wk_receive_remote_write_url"] = hung
        workload.write_text(yaml.safe_dump(values))
        obs = inventory / "host_vars" / "observability.yml"
        values = yaml.safe_load(obs.read_text())
        values["wk_receive_grpc_endpoints"] = [*values["wk_receive_grpc_endpoints"], closed]
        obs.write_text(yaml.safe_dump(values))

        result, journal = run(lab, tmp_path, "diagnose-network", topology.CLUSTERS[1],
                              inventory=inventory)
        assert result.returncode == 1, result.stdout
        diag = first_step(journal)
        assert diag["checks"][0]["name"] == f"agent {topology.CLUSTERS[1]} -> {hung}"
        assert "timed out" in diag["checks"][0]["evidence"]
        assert f"remote-write {hung}" in diag["message"]
        # The URL the agent really uses answers.
        real = f"http://{lab.addresses.receiver(1)}:19291/api/v1/receive"
        assert any(c["name"].endswith(real) and c["status"] == "ok" for c in diag["checks"])

        result, journal = run(lab, tmp_path, "diagnose-network", "observability",
                              inventory=inventory)
        assert result.returncode == 1, result.stdout
        diag = first_step(journal)
        top = diag["checks"][0]
        assert top["name"] == f"here -> gRPC {closed}" and "connection refused" in \
            top["evidence"], diag["checks"]
        found = {c["name"]: c for c in diag["checks"]}
        assert "not among Thanos Query's stores" in found[f"query -> gRPC {closed}"]["evidence"]
        for i in range(topology.RECEIVERS):
            endpoint = f"{lab.addresses.receiver(i)}:10901"
            assert found[f"query -> gRPC {endpoint}"]["status"] == "ok"
            assert found[f"here -> gRPC {endpoint}"]["status"] == "ok"
        assert f"query -> gRPC {closed}" in diag["message"].replace("  ", " ") or \
            closed in diag["message"]



def test_a_firewalled_receiver_port_is_named_first(lab: Lab, tmp_path: Path) -> None:
    """A receiver whose gRPC port is blocked (packets dropped): it stays Ready on HTTP, so only
    the port probes and its peers' failing forwards show it."""
    ip = lab.addresses.receiver(1)
    with firewalled(lab, ip, 10901):
        result, journal = run(lab, tmp_path, "diagnose-receiver-connectivity", "observability",
                              "-e", "rate_window=8")
        net, net_journal = run(lab, tmp_path, "diagnose-network", "observability")
    assert result.returncode == 1, result.stdout
    diag = first_step(journal)
    top = diag["checks"][0]
    assert top["name"] == f"receiver {ip} gRPC" and top["status"] == "fail", diag["checks"]
    assert f"{ip}:10901" in top["evidence"] and "timed out" in top["evidence"], top
    found = {c["name"]: c for c in diag["checks"]}
    assert found[f"receiver {ip} ready"]["status"] == "ok"  # HTTP still answers
    assert found[f"receiver {ip} remote-write"]["status"] == "ok"
    for other in (0, 2):
        peer = lab.addresses.receiver(other)
        assert found[f"receiver {peer} gRPC"]["status"] == "ok"
    assert diag["message"].startswith(f"most likely: receiver {ip} gRPC")

    assert net.returncode == 1, net.stdout
    cells = {c["name"]: c for c in first_step(net_journal)["checks"]}
    assert cells[f"here -> gRPC {ip}:10901"]["status"] == "fail"
    assert cells[f"here -> gRPC {lab.addresses.receiver(0)}:10901"]["status"] == "ok"

    # Unblocked, the same diagnostic is clean again: the rule was the whole fault.
    result, journal = run(lab, tmp_path, "diagnose-receiver-connectivity", "observability",
                          "-e", "rate_window=2")
    found = {c["name"]: c for c in first_step(journal)["checks"]}
    assert found[f"receiver {ip} gRPC"]["status"] == "ok", found


def agent_metric(lab: Lab, prefix: str, having: str = "") -> float:
    """The first sample of the lab agent's /metrics whose line starts with `prefix` (and
    contains `having`)."""
    import urllib.request

    with urllib.request.urlopen(f"http://{lab.addresses.agent(0)}:9090/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    return next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(prefix) and having in line)


def agent_lag(lab: Lab) -> float:
    """The lab agent's remote-write lag now, read here from its /metrics."""
    return (agent_metric(lab, "prometheus_remote_storage_highest_timestamp_in_seconds")
            - agent_metric(lab, "prometheus_remote_storage_queue_highest_sent_timestamp"))


def slow_requests(lab: Lab) -> float:
    """Remote-write requests of the lab agent that took more than 2.5 s, so far."""
    histogram = "prometheus_remote_storage_sent_batch_duration_seconds"
    return (agent_metric(lab, f"{histogram}_count")
            - agent_metric(lab, f"{histogram}_bucket{{", 'le="2.5"'))


def test_a_slow_link_to_the_receiver_is_named_with_its_request_time(
        lab: Lab, tmp_path: Path) -> None:
    """The fault: 2 s of delay each way on the agent's link to its receiver (a proxy in the
    agent's namespace; the kernel here has no netem). Samples still arrive, but each request
    takes about 4 s: the diagnosis says the queue is slow and by how much."""
    if lab.podnet is None or shutil.which("nft") is None:
        pytest.skip("a per-pod slow link needs the pod network (root) and nft")
    receiver = lab.addresses.receiver(0)
    before = slow_requests(lab)
    with lab.podnet.delay(lab.addresses.agent(0), receiver, 19291, 2.0):
        poll("requests through the slow link", lambda: slow_requests(lab) > before or None,
             60, 1)
        _, journal = run(lab, tmp_path, "diagnose-remote-write", AGENT_NS,
                         "-e", "rate_window=15")
    diag = first_step(journal)
    top = diag["checks"][0]
    assert top["name"] == "queue thanos-receive slow" and top["status"] == "warn", diag
    seconds = float(top["evidence"].split("each request takes ")[1].split(" s")[0])
    assert 3.5 <= seconds < 30, top  # two 2 s delays per request, plus the receiver's time
    assert diag["message"].startswith("most likely: queue thanos-receive slow")
    # Without the delay, requests are fast again.
    poll("fast requests again", lambda: not any(
        c["name"] == "queue thanos-receive slow" for c in first_step(run(
            lab, tmp_path, "diagnose-remote-write", AGENT_NS, "-e", "rate_window=5")[1]
        )["checks"]) or None, 120, 5)


def test_an_agent_whose_route_to_its_receiver_is_dropped_is_named_not_restarted(
        lab: Lab, tmp_path: Path) -> None:
    """The fault: the agent's namespace loses its route to its receiver (only that pod: the
    receiver answers watchkeeper and every other pod). The diagnosis names the agent's own
    'no route to host' errors first and explains the lag by them; a restart is not proposed."""
    if lab.podnet is None:
        pytest.skip("a per-pod route needs the pod network (root)")
    receiver = lab.addresses.receiver(0)
    assert f"http://{receiver}:19291/api/v1/receive" in agent_config(lab)
    tight = inventory_with(lab, tmp_path, AGENT_NS, wk_threshold_remote_write_lag_seconds=10)
    log = lab.nodeagent_dir / "logs" / f"{AGENT_NS}_prometheus-agent-0.log"
    start = log.stat().st_size
    with lab.podnet.drop_route(lab.addresses.agent(0), receiver):
        # A request under way on a kept-alive connection hangs until its timeout (30 s); the
        # agent's next connections fail at once with "no route to host".
        poll("the agent's own 'no route to host'", lambda: b"no route to host" in
             log.read_bytes()[start:] or None, 120, 2)
        poll("the agent 15 s behind", lambda: agent_lag(lab) > 15 or None, 120, 2)
        result, journal = run(lab, tmp_path, "diagnose-remote-write", AGENT_NS,
                              inventory=tight)
    assert result.returncode == 1, result.stdout
    diag = first_step(journal)
    top = diag["checks"][0]
    assert top["name"] == "log: unreachable" and top["status"] == "fail", diag["checks"]
    assert "no route to host" in top["evidence"] and receiver in top["evidence"], top
    found = {c["name"]: c for c in diag["checks"]}
    assert found[f"endpoint http://{receiver}:19291/api/v1/receive"]["status"] == "ok"
    behind = next(c for c in diag["checks"] if c["name"].endswith(" behind"))
    # Its own errors: unreachable, and a timeout for the request that hung when the route went.
    explained = behind["evidence"].split("explained by the agent's own errors (", 1)
    assert len(explained) == 2 and "unreachable" in explained[1], behind
    assert not [c for c in diag["checks"] if c["name"].endswith(" stuck")]
    # The route back, the agent catches up by itself (the WAL kept every sample).
    poll("the agent caught up", lambda: agent_lag(lab) < 10 or None, 180, 2)


# ----------------------------------------------------------------------------- disk space


def disk_findings(lab: Lab, tmp_path: Path, volume: Path, *args: str) -> tuple[Any, dict]:
    inventory = inventory_with(lab, tmp_path, AGENT_NS, wk_data_volume_paths=[str(volume)])
    result, journal = run(lab, tmp_path, "diagnose-disk-space", AGENT_NS, "-e", "rate_window=2",
                          *args, inventory=inventory)
    assert journal, result.stderr
    return result, first_step(journal)


def test_a_volume_filled_by_foreign_data_is_named_with_what_fills_it(
        lab: Lab, tmp_path: Path, volume_16m: Path) -> None:
    small_volume = volume_16m
    # The small filesystem holds a copy of the agent's real WAL: a healthy agent volume.
    shutil.copytree(lab.dir / "data" / "pv" / AGENT_NS / "data-prometheus-agent-0" / "wal",
                    small_volume / "wal")
    result, diag = disk_findings(lab, tmp_path, small_volume)
    assert result.returncode == 0, diag
    volume = next(c for c in diag["checks"] if c["name"] == f"disk {small_volume}")
    assert volume["status"] == "ok" and "holds: wal" in volume["evidence"], volume
    assert diag["message"].startswith("most likely: nothing wrong"), diag["message"]

    # The fault: a dump written into the volume until it is >= 90 % full.
    free = shutil.disk_usage(small_volume).free
    (small_volume / "core.4242").write_bytes(b"\0" * int(free - 150 * 1024))
    result, diag = disk_findings(lab, tmp_path, small_volume)
    assert result.returncode == 1, diag
    top = diag["checks"][0]
    assert top["name"] == f"not TSDB data {small_volume}" and top["status"] == "fail", top
    assert "core.4242" in top["evidence"] and "remove it" in top["hint"]
    assert f"most likely: not TSDB data {small_volume}" in diag["message"]
    volume = next(c for c in diag["checks"] if c["name"] == f"disk {small_volume}")
    assert volume["status"] == "fail" and ">= 90%" in volume["evidence"]


def test_blocks_the_shipper_did_not_upload_are_named_first(
        lab: Lab, tmp_path: Path, small_volume: Path) -> None:
    """A receiver's real TSDB (blocks, WAL, thanos.shipper.json) copied onto the small
    filesystem; the fault is the shipper's record missing the oldest blocks, which is what a
    receiver whose uploads fail looks like on disk."""
    tenant = lab.dir / "data" / "pv" / "monitoring" / "data-thanos-receive-0" / "default-tenant"
    copy = small_volume / "default-tenant"
    # The newest uploaded blocks, at most 8 (the filesystem is small); a young lab's receiver
    # may have fewer, and two are enough to tell "not uploaded" from "uploaded". A block cut
    # in the last seconds is not uploaded yet (the shipper runs every 30 s): left out, as the
    # baseline is a receiver whose record covers its blocks.
    shipper = json.loads((tenant / "thanos.shipper.json").read_text())
    uploaded = set(shipper["uploaded"])
    blocks = sorted(p.name for p in tenant.iterdir() if len(p.name) == 26
                    and p.name in uploaded)[-8:]
    assert len(blocks) >= 2, f"{tenant} holds {len(blocks)} uploaded block(s)"
    missing = len(blocks) - 1  # the shipper's record lacks all but the newest
    copy.mkdir()
    for name in blocks:
        shutil.copytree(tenant / name, copy / name)
    shutil.copytree(tenant / "wal", copy / "wal")
    (copy / "thanos.shipper.json").write_text(json.dumps(shipper))

    _, diag = disk_findings(lab, tmp_path, small_volume, "-e", "upload_grace=60")
    assert not any(c["name"].startswith("uploads ") for c in diag["checks"]), diag
    volume = next(c for c in diag["checks"] if c["name"] == f"disk {small_volume}")
    assert f"blocks ({len(blocks)})" in volume["evidence"], volume

    shipper["uploaded"] = [u for u in shipper["uploaded"] if u not in blocks[:missing]]
    (copy / "thanos.shipper.json").write_text(json.dumps(shipper))
    _, diag = disk_findings(lab, tmp_path, small_volume, "-e", "upload_grace=60")
    top = diag["checks"][0]
    assert top["name"] == f"uploads {small_volume}" and top["status"] == "warn", diag["checks"]
    assert top["evidence"].startswith(f"{missing} block(s) not uploaded"), top
    assert "objstore" in top["hint"]
    assert diag["message"].startswith(f"most likely: uploads {small_volume}")


def test_disk_space_reads_every_discovered_volume_of_the_cluster(
        lab: Lab, tmp_path: Path) -> None:
    result, journal = run(lab, tmp_path, "diagnose-disk-space", "observability",
                          "-e", "rate_window=2")
    assert result.returncode == 0, result.stdout
    found = {c["name"]: c for c in first_step(journal)["checks"]}
    for i in range(topology.RECEIVERS):
        path = lab.dir / "data" / "pv" / "monitoring" / f"data-thanos-receive-{i}"
        check = found[f"disk {path}"]
        assert check["status"] == "ok" and "blocks (" in check["evidence"], check
        assert f"claim data-thanos-receive-{i}" in check["evidence"]
