"""`watchkeeper logs COMPONENT` and `kubectl logs` against the lab: the real API server's
pods/log, reaching the pods' real processes' output through the node's kubelet port (served by
the lab node agent, the lab's one stand-in, for the kubelet). Also agent-health reading the
agent's log through pods/log, as in production."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from watchkeeper_lab import Lab, topology

from tests.conftest import cli
from tests.lab.test_checklists import inventory_with
from tests.lab.test_kubernetes import NS, core, kubectl
from tests.lab.test_receiver_agent_health import checks, run

pytestmark = pytest.mark.lab
AGENT_NS = topology.CLUSTERS[0]
TS = re.compile(r"\bts=(\S+Z)")


def logs(lab: Lab, *args: str, inventory: Path | None = None) -> tuple[int, str, str]:
    result = cli("logs", *args, "-i", str(inventory or lab.inventory_dir), env=lab.env())
    return result.returncode, result.stdout, result.stderr


def receive_pods(lab: Lab) -> list[str]:
    return sorted(p.metadata.name for p in core(lab).list_namespaced_pod(
        NS, label_selector="app.kubernetes.io/name=thanos-receive").items)


def by_pod(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(r"\[pod/([^\]]+)\] (.*)", line)
        assert match, f"a line without its pod prefix: {line!r}"
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def when(line: str) -> float:
    match = TS.search(line)
    assert match, line
    return datetime.fromisoformat(match.group(1)[:26] + "+00:00").timestamp()


def test_kubectl_logs_of_a_receiver_is_its_process_output(lab: Lab) -> None:
    out = kubectl(lab, "-n", NS, "logs", "thanos-receive-0", "--tail", "5")
    lines = out.splitlines()
    assert len(lines) == 5
    written = (lab.nodeagent_dir / "logs" / f"{NS}_thanos-receive-0.log").read_text()
    for line in lines:
        assert line in written  # the receiver's own lines, through the API server
    assert all("component=receive" in line for line in lines), lines


def test_logs_prints_the_tail_of_every_receiver_prefixed_with_its_pod(lab: Lab) -> None:
    rc, out, err = logs(lab, "receive", "--cluster", "observability", "--tail", "5")
    assert rc == 0, err
    found = by_pod(out)
    assert sorted(found) == receive_pods(lab)
    assert all(len(lines) == 5 for lines in found.values()), found
    # Each pod's own lines: the receiver's label names the pod it came from.
    rc, out, err = logs(lab, "thanos-receive", "--cluster", "observability", "--pod",
                        "thanos-receive-1", "--output", "json")
    assert rc == 0, err
    answer = json.loads(out)
    assert [p["pod"] for p in answer["pods"]] == ["thanos-receive-1"]
    lines = answer["pods"][0]["lines"]
    own = (lab.nodeagent_dir / "logs" / f"{NS}_thanos-receive-1.log").read_text()
    other = (lab.nodeagent_dir / "logs" / f"{NS}_thanos-receive-0.log").read_text()
    assert lines and all(line in own for line in lines), lines[-3:]
    assert not all(line in other for line in lines), lines[-3:]


def test_grep_and_since_narrow_the_lines(lab: Lab) -> None:
    rc, out, err = logs(lab, "receive", "--cluster", "observability", "--pod", "thanos-receive-0")
    assert rc == 0, err
    everything = by_pod(out)["thanos-receive-0"]
    stamped = [line for line in everything if TS.search(line)]
    assert len(stamped) > 10, everything[-5:]

    rc, out, err = logs(lab, "receive", "--cluster", "observability", "--pod",
                        "thanos-receive-0", "--grep", "level=info")
    grepped = by_pod(out)["thanos-receive-0"]
    assert grepped and all("level=info" in line for line in grepped)
    assert len(grepped) < len(everything)

    # --since, both ways: a cut after the newest line this run has written returns none of
    # them; a cut before its first returns all of them. (A young receiver writes its lines
    # within a second, so a cut "in the middle" cannot be put between them at 1 s precision.)
    # pods/log serves the current run only: an earlier test's restart of the receivers can
    # start a new run between two calls, so a changed run is read again.
    def pod_lines(*args: str) -> list[str]:
        rc, out, err = logs(lab, "receive", "--cluster", "observability", "--pod",
                            "thanos-receive-0", *args)
        assert rc == 0, err
        return by_pod(out).get("thanos-receive-0", [])

    for _ in range(5):
        newest = max(when(line) for line in stamped)
        time.sleep(max(0.0, newest + 3 - time.time()))  # the newest line >= 3 s old
        after_newest = pod_lines("--since", f"{int(time.time() - newest) - 1}s")
        before_first = pod_lines("--since", f"{int(time.time() - when(stamped[0])) + 5}s")
        now = pod_lines()
        if now[:1] == everything[:1]:
            break  # the same run throughout
        everything = now
        stamped = [line for line in everything if TS.search(line)]
    assert not set(after_newest) & set(stamped), after_newest[:3]
    assert all(when(line) > newest for line in after_newest if TS.search(line)), after_newest
    assert set(stamped) <= set(before_first), (len(stamped), len(before_first))


def test_an_unknown_component_names_what_exists(lab: Lab) -> None:
    rc, _, err = logs(lab, "thanos-recieve", "--cluster", "observability")
    assert rc == 2
    assert "no pod of component 'thanos-recieve'" in err
    assert "thanos-receive" in err and "alertmanager" in err


def test_a_cluster_without_a_kube_context_is_refused_naming_the_field(
        lab: Lab, tmp_path: Path) -> None:
    inventory = inventory_with(lab, tmp_path, "observability", wk_kube_context="")
    rc, out, err = logs(lab, "receive", "--cluster", "observability", inventory=inventory)
    assert rc == 2 and not out
    assert "observability declares no wk_kube_context" in err


def test_a_bad_since_is_refused_naming_the_flag(lab: Lab) -> None:
    rc, _, err = logs(lab, "receive", "--cluster", "observability", "--since", "ten minutes")
    assert rc == 2 and "--since 'ten minutes'" in err


def test_agent_health_reads_the_agent_log_through_pods_log(lab: Lab, tmp_path: Path) -> None:
    inventory = inventory_with(lab, tmp_path, AGENT_NS, wk_agent_log_path="")
    result, journal = run(lab, tmp_path, "agent-health", AGENT_NS, "-e", "log_window=600",
                          inventory=inventory)
    assert journal, result.stderr
    log = checks(journal)["agent log"]
    assert "Kubernetes API" in log["evidence"], log
    assert "Exception" not in log["evidence"], log  # the read itself worked
    # The agent's own lines arrived: counted when clean, quoted when an error is classified.
    counted = re.search(r"\((\d+) lines\)", log["evidence"])
    assert (counted and int(counted.group(1)) > 0) or "e.g." in log["evidence"], log
