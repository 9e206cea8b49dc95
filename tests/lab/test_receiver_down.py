"""receiver-down (emergency) against the lab: a receiver that cannot come back (another
program holds its HTTP port, so each restart fails) is diagnosed, restarted, then taken out of
the ring; writes keep flowing; without --yes nothing changes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.helpers import port_taken
from tests.lab.test_hashring import endpoints, playbook_steps, ring_text
from tests.lab.test_kubernetes import NS, core, is_ready

pytestmark = pytest.mark.lab
VICTIM = "thanos-receive-2"


def run(lab: Lab, tmp_path: Path, runbook: str, *args: str) -> tuple[Any, dict[str, Any]]:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    result = cli("run", runbook, "-i", str(lab.inventory_dir), "--limit", "observability",
                 "--run-dir", str(run_dir), "--output", "json", *args,
                 env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "state"), **lab.env()})
    return result, json.loads((run_dir / "journal.json").read_text())


@contextlib.contextmanager
def held_down(lab: Lab) -> Iterator[None]:
    """Kill the victim's process and take its HTTP port first: every restart then fails to
    bind, as a receiver whose node lost its volume or port would keep failing."""
    def kill_victim() -> None:
        with contextlib.suppress(ProcessLookupError, KeyError):
            os.kill(int(lab.pod_records()[f"{NS}/{VICTIM}"]["pid"]), signal.SIGKILL)

    kill_victim()
    with port_taken(lab, lab.addresses.receiver(2), 10902, evict=kill_victim):
        yield


def wait_not_ready(lab: Lab) -> None:
    deadline = time.monotonic() + 60
    while is_ready(core(lab).read_namespaced_pod(VICTIM, NS)):
        assert time.monotonic() < deadline, f"{VICTIM} never reported not Ready"
        time.sleep(1)


def test_without_yes_it_only_diagnoses(lab: Lab, tmp_path: Path) -> None:
    ring = ring_text(lab)
    with held_down(lab):
        wait_not_ready(lab)
        uid = core(lab).read_namespaced_pod(VICTIM, NS).metadata.uid
        result, journal = run(lab, tmp_path, "receiver-down")
        # Check mode that finds a receiver down exits 1, so a pager hook or CI can act on it.
        assert result.returncode == 1, result.stdout
        assert journal["check_mode"] is True
        step = playbook_steps(journal)[0]
        assert f"{VICTIM} Running, not Ready" in step["message"], step
        assert "would:" in step["message"] and f"restart {VICTIM}" in step["message"]
        assert any(c["name"] == f"{VICTIM} Ready" and c["status"] == "fail"
                   for c in step["checks"])
        assert core(lab).read_namespaced_pod(VICTIM, NS).metadata.uid == uid  # not restarted
        assert ring_text(lab) == ring
    _wait_ready(lab)


def test_a_receiver_that_stays_down_is_restarted_then_taken_out_of_the_ring(
    lab: Lab, tmp_path: Path
) -> None:
    victim_endpoint = f"{lab.addresses.receiver(2)}:10901"
    assert victim_endpoint in endpoints(lab)
    try:
        with held_down(lab):
            wait_not_ready(lab)
            result, journal = run(lab, tmp_path, "receiver-down", "--yes", "-e",
                                  "restart_timeout=20")
            assert result.returncode == 0, (result.stdout, journal.get("message"))
            step = next(s for s in playbook_steps(journal) if s["status"] == "changed")
            assert f"restart {VICTIM} -> still down" in step["message"], step
            assert "(proven)" in step["message"]
            assert victim_endpoint not in endpoints(lab)
            assert len(endpoints(lab)) == topology.RECEIVERS - 1
            post = [s for s in journal["steps"] if s["phase"] == "post-gate"]
            assert post and post[0]["status"] == "ok", post  # writes flow after the remedy
    finally:
        _wait_ready(lab)
        result, _ = run(lab, tmp_path, "hashring")  # back in the ring once Ready
        assert result.returncode == 0, result.stdout
    assert victim_endpoint in endpoints(lab)


def _wait_ready(lab: Lab) -> None:
    """Wait for the victim to be Ready again. A Thanos receiver whose HTTP bind failed can hang
    in its shutdown, ignoring SIGTERM (seen with v0.40.1): a pod deleted in that state stays
    Terminating for its 900 s grace period. The operator's way out, taken here after a minute:
    force-delete the pod (the node then kills the process at once)."""
    deadline = time.monotonic() + 300
    forced = False
    stuck_since: float | None = None
    while True:
        try:
            pod = core(lab).read_namespaced_pod(VICTIM, NS)
        except ApiException as exc:  # between the old pod's removal and the new one
            assert exc.status == 404, exc
            pod = None
        if pod is not None and is_ready(pod) and pod.metadata.deletion_timestamp is None:
            return
        if pod is not None and pod.metadata.deletion_timestamp is not None and not forced:
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since > 60:
                core(lab).delete_namespaced_pod(VICTIM, NS, grace_period_seconds=0)
                forced = True
        assert time.monotonic() < deadline, f"{VICTIM} did not come back"
        time.sleep(1)
