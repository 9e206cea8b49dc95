"""Faults the lab tests share: a blocked port and a port held by another program, made
inside the pod's own network namespace (with the pod network) or on its loopback address
(reduced mode)."""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from watchkeeper_lab import Lab


@contextlib.contextmanager
def firewalled(lab: Lab, ip: str, port: int) -> Iterator[None]:
    """A blocked port, as a firewall or a network policy makes it: an nftables rule inside that
    pod's network namespace drops TCP to this port (from every pod and the host alike; nothing
    outside the namespace changes); lifted afterwards."""
    if lab.podnet is None or shutil.which("nft") is None:
        pytest.skip("blocking a port needs the pod network (root) and nft (setup installs it)")
    with lab.podnet.block_port(ip, port):
        yield


@contextlib.contextmanager
def port_taken(lab: Lab, ip: str, port: int, deadline_s: float = 10.0,
               evict: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Another program holds `ip`:`port` where the pod runs, so the pod's process cannot bind
    it. `evict` is called between attempts (e.g. to kill the pod's process that holds it
    now). With the pod network the squatter runs in the pod's namespace (made ahead of the pod
    if need be: the node agent reuses it); in reduced mode it binds the pod's loopback
    address."""
    deadline = time.monotonic() + deadline_s
    if lab.podnet is None:
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            while True:
                try:
                    squatter.bind((ip, port))
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{ip}:{port} never came free"
                    evict()
                    time.sleep(0.05)
            squatter.listen(1)
            yield
        return
    lab.podnet.ensure_host(ip)
    code = (
        "import socket, sys, time\n"
        f"end = time.monotonic() + {deadline_s}\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "while True:\n"
        f"    try: s.bind(('0.0.0.0', {port})); break\n"
        "    except OSError:\n"
        "        if time.monotonic() > end: print('busy', flush=True); sys.exit(1)\n"
        "        time.sleep(0.02)\n"
        "s.listen(1); print('bound', flush=True); time.sleep(3600)\n")
    squatter = subprocess.Popen([*lab.podnet.exec_prefix(ip), sys.executable, "-c", code],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None
        while not select.select([squatter.stdout], [], [], 0.05)[0]:
            evict()
        line = squatter.stdout.readline().strip()
        assert line == "bound", f"{ip}:{port} never came free ({line or 'no answer'})"
        yield
    finally:
        squatter.kill()
        squatter.wait(10)


def platform_applications(lab: Lab) -> list[dict[str, object]]:
    """The lab's platform Applications (their path under clusters/), not a test's own."""
    from watchkeeper_lab import argocd

    return [a for a in argocd.applications(lab.kubeconfig)
            if str(a["spec"].get("source", {}).get("path", "")).startswith("clusters/")]


def set_platform_auto_sync(lab: Lab, on: bool) -> list[str]:
    """Automated sync (with prune, as the lab's GitOps repository declares it) on or off for
    every platform Application; the names it changed."""
    from watchkeeper_lab import argocd

    api = argocd.custom_api(lab.kubeconfig)
    changed = []
    for app in platform_applications(lab):
        policy = dict(app["spec"].get("syncPolicy") or {})
        if bool(policy.get("automated")) == on:
            continue
        policy["automated"] = {"prune": True, "selfHeal": False} if on else None
        api.patch_namespaced_custom_object(argocd.GROUP, argocd.VERSION, argocd.NAMESPACE,
                                           "applications", app["metadata"]["name"],
                                           {"spec": {"syncPolicy": policy}})
        changed.append(str(app["metadata"]["name"]))
    return changed


def wait_jobs_stale(lab: Lab, cluster: str, seconds: float, timeout: float = 120) -> float:
    """Wait until the newest `up` sample of `cluster` in Thanos Query is older than `seconds`
    (plus a margin for the run that reads it next), as the missing-metrics diagnosis reads it:
    the newest sample over the look-back, stale markers or not. Returns its age."""
    from tests.lab.test_lab import poll, query

    selector = f'up{{cluster="{cluster}"}}'

    def age() -> float | None:
        newest = [float(row["value"][1]) for promql in (
            f"max(max_over_time(timestamp({selector})[1h:15s]))", f"max(timestamp({selector}))")
            for row in query(lab, promql)]
        current = time.time() - max(newest, default=0.0)
        return current if current > seconds + 3 else None

    return float(poll(f"{cluster}'s newest sample older than {seconds:.0f} s", age, timeout, 1))
