"""receiver-health, agent-health and restart-agent against the lab's real receivers, agents
and API server: the quorum tolerance read from the real ring and receivers, a receiver kept
down by SIGKILL named by ring membership, quorum and its peers' forward errors; an agent
restarted onto a wrong remote-write config (a closed port and a wrong path: connection refused
and a real 404 from Thanos) classified by agent-health, and restart-agent bringing it back
with the WAL replayed and the lag caught up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.test_kubernetes import NS, core, is_ready, proxied
from tests.lab.test_lab import poll

pytestmark = pytest.mark.lab
AGENT_NS = topology.CLUSTERS[0]
AGENT_CM = "prometheus-agent-config"


def run(lab: Lab, tmp_path: Path, runbook: str, limit: str, *args: str,
        inventory: Path | None = None) -> tuple[Any, dict[str, Any]]:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    result = cli("run", runbook, "-i", str(inventory or lab.inventory_dir), "--limit", limit,
                 "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()},
                 timeout=600)
    journal_path = run_dir / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return result, journal


def checks(journal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for s in journal["steps"] if s["phase"] == "playbook"
            for c in s["checks"]}


def step(journal: dict[str, Any], phase: str) -> dict[str, Any]:
    return next(s for s in journal["steps"] if s["phase"] == phase)


# ----------------------------------------------------------------------------- receivers


def real_quorum(lab: Lab) -> tuple[int, int]:
    """(ring size, replication factor) read here, independently of the runbook."""
    cm = core(lab).read_namespaced_config_map("thanos-receive-hashring", NS)
    ring = json.loads(cm.data["hashrings.json"])
    text = proxied(lab, "thanos-receive-0", 10902, "metrics")
    rf = next(int(float(line.split()[1])) for line in text.splitlines()
              if line.startswith("thanos_receive_replication_factor "))
    return len(ring[-1]["endpoints"]), rf


def test_receiver_health_reports_the_quorum_tolerance_of_the_real_ring(
    lab: Lab, tmp_path: Path
) -> None:
    size, rf = real_quorum(lab)
    assert (size, rf) == (3, 2)
    result, journal = run(lab, tmp_path, "receiver-health", "observability")
    assert result.returncode == 0, result.stdout
    found = checks(journal)
    quorum = found["write quorum default"]
    # Thanos v0.40: RF 2 needs 1 replica, so one of three receivers may fail.
    assert quorum["status"] == "ok"
    assert (f"ring of {size}, replication factor {rf}, write quorum 1" in quorum["evidence"])
    assert "1 receiver(s) may fail before writes lose quorum" in quorum["evidence"]
    assert "1 more may fail" in quorum["evidence"]
    assert found["ring membership"]["status"] == "ok"
    for i in range(topology.RECEIVERS):
        assert found[f"receiver thanos-receive-{i}"]["status"] == "ok"
        assert found[f"uploads thanos-receive-{i}"]["status"] == "ok"


class Killer:
    """Keeps one receive pod's process down: the node agent restarts a dead process within
    about a second, so every new PID it records is SIGKILLed again until stop()."""

    def __init__(self, lab: Lab, pod: str):
        self.lab, self.key = lab, f"{NS}/{pod}"
        self.stopped = threading.Event()
        self.kills = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.wait(0.2):
            record = self.lab.pod_records().get(self.key)
            if record and record.get("pid"):
                try:
                    os.kill(int(record["pid"]), signal.SIGKILL)
                    self.kills += 1
                except (ProcessLookupError, PermissionError):
                    pass

    def __enter__(self) -> Killer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()


def test_a_killed_receiver_is_named_and_the_quorum_left_is_zero(
    lab: Lab, tmp_path: Path
) -> None:
    victim = "thanos-receive-2"
    ip = lab.addresses.receiver(2)
    with Killer(lab, victim) as killer:
        poll(f"{victim} not Ready in the API",
             lambda: not is_ready(core(lab).read_namespaced_pod(victim, NS)), 60, 0.5)
        result, journal = run(lab, tmp_path, "receiver-health", "observability",
                              "-e", "rate_window=8")
        assert killer.kills > 0
    assert result.returncode == 1, result.stdout
    found = checks(journal)
    membership = found["ring membership"]
    assert membership["status"] == "fail"
    assert f"ring endpoints without a Ready pod: {ip}:10901" in membership["evidence"]
    quorum = found["write quorum default"]
    assert quorum["status"] == "warn"
    assert "1 of the ring is down now, so no further receiver may fail" in quorum["evidence"]
    assert found[f"receiver {victim}"]["status"] == "fail"
    # Its peers fail to forward its share of the writes to it.
    peers = [found[f"receiver thanos-receive-{i}"] for i in (0, 1)]
    assert any("forwarded to other receivers failed" in c["evidence"]
               and c["status"] in ("warn", "fail") for c in peers), peers
    poll(f"{victim} Ready again",
         lambda: is_ready(core(lab).read_namespaced_pod(victim, NS)), 120, 1)


# ----------------------------------------------------------------------------- agents


def agent_config(lab: Lab) -> str:
    cm = core(lab).read_namespaced_config_map(AGENT_CM, AGENT_NS)
    return str(cm.data["prometheus.yml"])


def config_on_disk(lab: Lab) -> str:
    path = (lab.nodeagent_dir / "pods" / AGENT_NS / "prometheus-agent-0" / "volumes" / "config"
            / "prometheus.yml")
    return path.read_text() if path.exists() else ""


def agent_uid(lab: Lab) -> str:
    return str(core(lab).read_namespaced_pod("prometheus-agent-0", AGENT_NS).metadata.uid)


def wrong_config(original: str, receiver: str) -> str:
    config = yaml.safe_load(original)
    queue = config["remote_write"][0]
    refused = dict(queue, url=f"http://{receiver}:19299/api/v1/receive")
    not_found = dict(queue, name="wrong-path", url=f"http://{receiver}:19291/api/v1/wrong")
    config["remote_write"] = [refused, not_found]
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def agent_restored(lab: Lab) -> Iterator[str]:
    """The agent's ConfigMap as it was, and the agent running it, whatever the test did."""
    original = agent_config(lab)
    yield original
    if agent_config(lab) != original:
        core(lab).patch_namespaced_config_map(AGENT_CM, AGENT_NS,
                                              {"data": {"prometheus.yml": original}})
    poll("the original agent config on disk", lambda: config_on_disk(lab) == original, 60, 0.5)
    agent = f"http://{lab.addresses.agent(0)}:9090/metrics"
    import urllib.request

    with urllib.request.urlopen(agent, timeout=5) as response:
        running_wrong = b"19299" in response.read()
    if running_wrong:  # the test stopped before its own restart: restart here
        uid = agent_uid(lab)
        core(lab).delete_namespaced_pod("prometheus-agent-0", AGENT_NS)
        poll("the agent recreated and Ready", lambda: (lambda p: p.metadata.uid != uid
                                                       and is_ready(p))(
            core(lab).read_namespaced_pod("prometheus-agent-0", AGENT_NS)), 120, 1)


def test_agent_health_is_clean_on_a_delivering_agent(lab: Lab, tmp_path: Path) -> None:
    # The last minute only: earlier lab tests restart receivers on purpose, and the agent
    # rightly logs the refused connections of those minutes.
    result, journal = run(lab, tmp_path, "agent-health", AGENT_NS, "-e", "log_window=60")
    assert result.returncode == 0, result.stdout
    found = checks(journal)
    assert found["remote write thanos-receive"]["status"] == "ok"
    wal = found["agent WAL"]
    assert wal["status"] == "ok"
    assert "data-prometheus-agent-0/wal" in wal["evidence"]
    assert "growth" in wal["evidence"] and "active series" in wal["evidence"]
    assert found["agent log"]["status"] == "ok"


def test_a_wrong_remote_write_url_is_classified_then_restart_agent_restores_delivery(
    lab: Lab, tmp_path: Path, agent_restored: str
) -> None:
    original = agent_restored
    receiver = lab.addresses.receiver(0)
    uid = agent_uid(lab)

    # Check mode: a server-side dry run of the delete says what would happen; nothing changes.
    result, journal = run(lab, tmp_path, "restart-agent", AGENT_NS, "--check")
    assert result.returncode == 0, result.stdout
    message = step(journal, "playbook")["message"]
    assert message.startswith(f"would delete pod {AGENT_NS}/prometheus-agent-0 (uid {uid})")
    assert "lag <= 60 s" in message  # the lab inventory's threshold
    time.sleep(2)
    assert agent_uid(lab) == uid

    # The fault: the ConfigMap points at a closed port and a path Thanos answers 404; the
    # node agent rewrites the file, and Prometheus reads it only when restarted.
    broken = wrong_config(original, receiver)
    core(lab).patch_namespaced_config_map(AGENT_CM, AGENT_NS, {"data": {"prometheus.yml": broken}})
    poll("the wrong config on disk", lambda: config_on_disk(lab) == broken, 60, 0.5)
    result, journal = run(lab, tmp_path, "restart-agent", AGENT_NS,
                          "-e", "catchup_timeout=20")
    assert result.returncode == 1, result.stdout
    found = checks(journal)
    assert found["pod recreated"]["status"] == "ok"
    assert found["WAL replayed"]["status"] == "ok"
    assert found["remote write caught up"]["status"] == "fail"
    assert "sent nothing since the restart" in found["remote write caught up"]["evidence"]
    assert agent_uid(lab) != uid

    result, journal = run(lab, tmp_path, "agent-health", AGENT_NS, "-e", "log_window=120")
    assert result.returncode == 1, result.stdout
    found = checks(journal)
    log = found["agent log"]
    assert log["status"] == "fail"
    assert "connection_refused x" in log["evidence"]
    assert "(queue thanos-receive)" in log["evidence"]
    assert "http_4xx_dropped x" in log["evidence"] and "(queue wrong-path)" in log["evidence"]
    assert "404 Not Found" in log["evidence"]
    queue = found["remote write thanos-receive"]
    assert queue["status"] == "fail"
    assert "lag at least" in queue["evidence"] and "19299" in queue["evidence"]

    # The fix: the right config back, restart, proven delivering.
    core(lab).patch_namespaced_config_map(AGENT_CM, AGENT_NS,
                                          {"data": {"prometheus.yml": original}})
    poll("the original config on disk", lambda: config_on_disk(lab) == original, 60, 0.5)
    before = agent_uid(lab)
    result, journal = run(lab, tmp_path, "restart-agent", AGENT_NS)
    assert result.returncode == 0, result.stdout
    found = checks(journal)
    assert agent_uid(lab) != before
    assert "WAL replayed in" in found["WAL replayed"]["evidence"]
    assert "active series" in found["WAL replayed"]["evidence"]
    caught = found["remote write caught up"]
    assert caught["status"] == "ok" and "thanos-receive lag" in caught["evidence"]
    assert "not resent" in caught["evidence"]
    gate = step(journal, "post-gate")
    assert gate["status"] == "ok" and "thanos-receive lag" in gate["message"]
    assert step(journal, "pre-gate")["status"] == "ok"


def test_a_bad_log_path_is_refused_before_anything_changes(lab: Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(lab.inventory_dir, inventory)
    host_vars = inventory / "host_vars" / f"{AGENT_NS}.yml"
    values = yaml.safe_load(host_vars.read_text())
    values["wk_agent_log_path"] = "logs/{pod}.log"
    host_vars.write_text(yaml.safe_dump(values))
    uid = agent_uid(lab)
    result, journal = run(lab, tmp_path, "restart-agent", AGENT_NS, inventory=inventory)
    assert result.returncode == 3, result.stdout
    assert "wk_agent_log_path 'logs/{pod}.log' is not absolute" in journal["message"]
    result, _ = run(lab, tmp_path, "restart-agent", AGENT_NS, "-e", "ready_timeout=-1")
    assert result.returncode == 2
    assert "ready_timeout" in result.stdout + result.stderr
    assert agent_uid(lab) == uid
