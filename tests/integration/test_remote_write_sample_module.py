"""The remote_write_sample module driven through its main(), as Ansible runs it on a host
that is not the controller, against the real agent and receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.collection import collection_root, collections_path
from tests.conftest import AGENT_PASSWORD, AGENT_USER, PromPair

pytestmark = pytest.mark.prometheus


def run_module(args: dict, tmp_path: Path) -> dict:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    module = collection_root() / "plugins" / "modules" / "remote_write_sample.py"
    result = subprocess.run([sys.executable, str(module), str(path)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(collections_path())},
                            timeout=60)
    return json.loads(result.stdout)


def test_module_samples_agent_and_receiver_and_hides_the_password(
    prom_pair: PromPair, tmp_path: Path
) -> None:
    out = run_module({"agent_url": prom_pair.agent_url, "agent_username": AGENT_USER,
                      "agent_password": AGENT_PASSWORD,
                      "receiver_urls": [prom_pair.receiver_url],
                      "remote_write_url": prom_pair.receiver_url + "/api/v1/write"}, tmp_path)
    assert out["changed"] is False
    assert out["agent"]["ready"] is True
    assert "prometheus_remote_storage_samples_total" in out["agent"]["samples"]
    assert out["receivers"][0]["ready"] is True
    assert out["remote_write_error"] == ""
    assert AGENT_PASSWORD not in json.dumps(out)  # no_log in the argument spec


def test_module_reports_wrong_password_as_http_401(prom_pair: PromPair, tmp_path: Path) -> None:
    out = run_module({"agent_url": prom_pair.agent_url, "agent_username": AGENT_USER,
                      "agent_password": "wrong"}, tmp_path)
    assert out["agent"]["ready"] is False
    assert out["agent"]["detail"].startswith("HTTP 401")


def test_module_rejects_bad_arguments(tmp_path: Path) -> None:
    out = run_module({"receiver_urls": "x", "timeout": "soon"}, tmp_path)
    assert out["failed"] is True
    assert "timeout" in out["msg"]
