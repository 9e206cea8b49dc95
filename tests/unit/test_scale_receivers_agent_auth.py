"""scale-receivers' steady-state gate reads each agent's remote-write lag with the inventory's
wk_agent_auth: a real HTTP server on 127.0.0.1 that, like an agent behind basic auth
(Prometheus' web.config.file basic_auth_users), refuses a request without the credentials."""

from __future__ import annotations

import base64
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbooks.gates import _agent_lags
from runbooks.inventory import load_inventory
from runbooks.model import RunContext
from runbooks.receivers.scale_receivers import ScaleParams

USER = "watchkeeper"
NEWEST, SENT = 1_700_000_030.0, 1_700_000_000.0
METRICS = f"""\
# HELP prometheus_remote_storage_highest_timestamp_in_seconds Highest timestamp appended.
# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge
prometheus_remote_storage_highest_timestamp_in_seconds {NEWEST}
# HELP prometheus_remote_storage_queue_highest_sent_timestamp_seconds Newest sent.
# TYPE prometheus_remote_storage_queue_highest_sent_timestamp_seconds gauge
prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{remote_name="r1",\
url="http://receive:19291/api/v1/receive"}} {SENT}
"""


@dataclass
class Agent:
    url: str
    password: str
    authorizations: list[str | None] = field(default_factory=list)


@pytest.fixture
def agent() -> Iterator[Agent]:
    password = "pw-" + os.urandom(6).hex()
    expected = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="agent"')
                self.end_headers()
                return
            if self.path != "/metrics":
                self.send_response(404)
                self.end_headers()
                return
            body = METRICS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                              daemon=True)
    thread.start()
    try:
        yield Agent(f"http://127.0.0.1:{server.server_address[1]}", password, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def context(tmp_path: Path, agent_url: str) -> RunContext:
    (tmp_path / "hosts.yml").write_text(f"""\
all:
  children:
    observability:
      hosts:
        obs-1:
          wk_role: observability
          wk_kube_context: obs-1
          wk_query_url: http://127.0.0.1:9
          wk_receive_http_urls: [http://127.0.0.1:9]
    workload:
      hosts:
        k8s-1:
          wk_role: workload
          wk_agent_url: {agent_url}
          wk_receive_remote_write_url: http://127.0.0.1:9/api/v1/receive
          wk_agent_auth:
            username: {USER}
            password: {{env: WK_TEST_AGENT_PASSWORD}}
""")
    inventory = load_inventory(tmp_path / "hosts.yml")
    return RunContext("test", ScaleParams(replicas=3), inventory,
                      inventory.select("obs-1"), check_mode=False)


def test_agent_lag_is_read_with_the_inventorys_agent_auth(
    agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_AGENT_PASSWORD", agent.password)
    ctx = context(tmp_path, agent.url)

    # What the gate did before: a bare GET, which the agent refuses.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{agent.url}/metrics", timeout=5)
    assert refused.value.code == 401

    assert _agent_lags(ctx) == {"k8s-1": NEWEST - SENT}
    expected = "Basic " + base64.b64encode(f"{USER}:{agent.password}".encode()).decode()
    assert agent.authorizations[-1] == expected


def test_wrong_agent_password_is_an_unknown_lag(
    agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_AGENT_PASSWORD", "not-" + agent.password)
    assert _agent_lags(context(tmp_path, agent.url)) == {"k8s-1": None}
