"""Shared fixtures: real Prometheus processes (Debian's package), the CLI as a subprocess, and
the collection on sys.path for tests of pure plugin code."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from watchkeeper_lab.controlplane import ControlPlane
from watchkeeper_lab.topology import Addresses

from runbooks.collection import collections_path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(collections_path()))

AGENT_USER = "watchkeeper"
# Generated per session so no test can pass by knowing it in advance.
AGENT_PASSWORD = "agent-pw-" + os.urandom(6).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, deadline_s: float = 30.0, auth: tuple[str, str] | None = None) -> None:
    """Poll `url` until it answers 200; fail naming the URL when the deadline passes."""
    request = urllib.request.Request(url)
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    deadline = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {deadline_s}s: {last}")


@dataclass
class Process:
    """A process a test started; stopped by its PID only."""

    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(self.args, stdout=handle, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


@dataclass
class PromPair:
    """A Prometheus Agent remote-writing into a Prometheus server with the remote-write
    receiver: both sides of the platform, from Debian's `prometheus` package."""

    root: Path
    agent_port: int
    receiver_port: int
    agent: Process
    receiver: Process
    inventory: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def agent_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def start_receiver(self) -> None:
        self.receiver.start()
        wait_ready(self.receiver_url + "/-/ready")

    def stop(self) -> None:
        self.agent.stop()
        self.receiver.stop()


def _prometheus() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's `prometheus` is not installed: run `apt-get install prometheus`"
                    " (.ci/run does it)")
    return binary


def _write_inventory(root: Path, pair_agent: str, pair_receiver: str) -> Path:
    inventory = root / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n"
        "  vars:\n"
        "    ansible_connection: local\n"
        "  children:\n"
        "    lab:\n"
        "      hosts:\n"
        "        k8s-cluster-01: {}\n"
    )
    (inventory / "host_vars" / "k8s-cluster-01.yml").write_text(
        "wk_environment: lab\n"
        f"wk_agent_url: {pair_agent}\n"
        "wk_agent_auth:\n"
        f"  username: {AGENT_USER}\n"
        "  password: {env: WK_TEST_AGENT_PASSWORD}\n"
        f"wk_receive_remote_write_url: {pair_receiver}/api/v1/write\n"
        f"wk_receive_http_urls: [{pair_receiver}]\n"
        "wk_threshold_remote_write_lag_seconds: 60\n"
    )
    return inventory


def start_prom_pair(root: Path) -> PromPair:
    """Start receiver then agent; wait until the agent has delivered samples."""
    import bcrypt

    binary = _prometheus()
    root.mkdir(parents=True, exist_ok=True)
    agent_port, receiver_port = free_port(), free_port()
    hashed = bcrypt.hashpw(AGENT_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (root / "web.yml").write_text(f"basic_auth_users:\n  {AGENT_USER}: '{hashed}'\n")
    (root / "agent.yml").write_text(
        "global: {scrape_interval: 2s}\n"
        "scrape_configs:\n"
        "  - job_name: agent\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{agent_port}']}}]\n"
        f"    basic_auth: {{username: {AGENT_USER}, password_file: {root / 'pw'}}}\n"
        "remote_write:\n"
        f"  - url: http://127.0.0.1:{receiver_port}/api/v1/write\n"
        "    name: receiver\n"
        "    queue_config: {batch_send_deadline: 1s, max_backoff: 1s}\n"
    )
    (root / "pw").write_text(AGENT_PASSWORD)
    (root / "receiver.yml").write_text("global: {scrape_interval: 15s}\n")
    receiver = Process("receiver", [
        binary, f"--config.file={root / 'receiver.yml'}", f"--storage.tsdb.path={root / 'recv'}",
        f"--web.listen-address=127.0.0.1:{receiver_port}", "--web.enable-remote-write-receiver",
    ], root / "receiver.log")
    agent = Process("agent", [
        binary, "--enable-feature=agent", f"--config.file={root / 'agent.yml'}",
        f"--storage.agent.path={root / 'agent'}", f"--web.listen-address=127.0.0.1:{agent_port}",
        f"--web.config.file={root / 'web.yml'}",
    ], root / "agent.log")
    pair = PromPair(root, agent_port, receiver_port, agent, receiver,
                    _write_inventory(root, f"http://127.0.0.1:{agent_port}",
                                     f"http://127.0.0.1:{receiver_port}"),
                    env={"WK_TEST_AGENT_PASSWORD": AGENT_PASSWORD})
    pair.start_receiver()
    agent.start()
    wait_ready(pair.agent_url + "/-/ready", auth=(AGENT_USER, AGENT_PASSWORD))
    _wait_delivered(pair)
    return pair


def _wait_delivered(pair: PromPair, deadline_s: float = 30.0) -> None:
    """Bounded wait until the receiver holds at least one sample from the agent."""
    url = pair.receiver_url + "/api/v1/query?query=count(up)"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=2) as response:
            if b'"result":[{' in response.read():
                return
        time.sleep(0.5)
    raise TimeoutError(f"no sample from the agent reached the receiver in {deadline_s}s")


@pytest.fixture(scope="module")
def prom_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromPair]:
    pair = start_prom_pair(tmp_path_factory.mktemp("prom"))
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def state_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Per-test state (locks, metrics, runs) so tests never see each other's or the user's."""
    env = {"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
        check_rc: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `watchkeeper` command as an operator would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    binary = Path(sys.executable).parent / "watchkeeper"
    result = subprocess.run([str(binary), *args], capture_output=True, text=True,
                            env=full_env, timeout=timeout)
    if check_rc is not None:
        assert result.returncode == check_rc, (result.stdout, result.stderr)
    return result


NAMESPACE = "monitoring"


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver (built from the registries on first use), with contexts
    cluster-a (namespace monitoring) and cluster-b (monitoring-b)."""
    root = tmp_path_factory.mktemp("kube")
    plane = ControlPlane(root, Addresses.for_lab(root, routable=False).ip(5))
    try:
        plane.start({"cluster-a": NAMESPACE, "cluster-b": "monitoring-b"},
                    progress=lambda line: print(line, flush=True))
        yield plane
    finally:
        plane.stop()
