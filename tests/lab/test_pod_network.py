"""The lab's pod network: each pod in a network namespace of its own on the lab's bridge, as a
CNI bridge plugin makes it (as root; reduced mode without root has none of this)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
from watchkeeper_lab import Lab, topology

from tests.lab.test_lab import poll

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="the pod network needs root")]


def ip_json(*args: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True,
                                     check=True).stdout or "[]")


def listeners(lab: Lab, ip: str) -> set[str]:
    """Local address:port of every TCP listener inside `ip`'s namespace, a wildcard address
    (`*`, `[::]`: Go binds 0.0.0.0 dual-stack) written as 0.0.0.0."""
    assert lab.podnet is not None
    out = subprocess.run([*lab.podnet.exec_prefix(ip), "ss", "-Htln"], capture_output=True,
                         text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        if line.strip():
            host, port = line.split()[3].rsplit(":", 1)
            found.add(f"{'0.0.0.0' if host in ('*', '[::]') else host}:{port}")
    return found


def netns_inode(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def test_each_receiver_binds_0_0_0_0_in_a_namespace_of_its_own(lab: Lab) -> None:
    """Three pods listen on the same ports (0.0.0.0:10901/10902/19291), each in its own
    namespace, and are reached at their pod IPs; their arguments are not rewritten."""
    assert lab.podnet is not None
    records = lab.pod_records()
    seen = set()
    for i in range(topology.RECEIVERS):
        ip = lab.addresses.receiver(i)
        record = records[f"monitoring/thanos-receive-{i}"]
        assert record["ip"] == ip
        inode = netns_inode(int(record["pid"]))
        assert inode != netns_inode(os.getpid()), "the pod runs in the host's namespace"
        seen.add(inode)
        assert {"0.0.0.0:10901", "0.0.0.0:10902", "0.0.0.0:19291"} <= listeners(lab, ip)
        argv = Path(f"/proc/{record['pid']}/cmdline").read_bytes().split(b"\0")
        assert b"--grpc-address=0.0.0.0:10901" in argv  # nothing rewritten to the pod IP
        with urllib.request.urlopen(f"http://{ip}:10902/-/ready", timeout=5) as response:
            assert response.status == 200
        # The pod's eth0 holds exactly its address; its default route is the bridge's.
        netns = lab.podnet.netns(ip)
        addrs = ip_json("-n", netns, "addr", "show", "dev", "eth0")
        assert [a["local"] for a in addrs[0]["addr_info"] if a["family"] == "inet"] == [ip]
        routes = ip_json("-n", netns, "route", "show", "default")
        assert routes[0]["gateway"] == lab.podnet.gateway
    assert len(seen) == topology.RECEIVERS


def test_nothing_is_added_to_the_hosts_lo_and_the_block_lives_on_the_bridge(lab: Lab) -> None:
    assert lab.podnet is not None
    lo = ip_json("addr", "show", "dev", "lo")[0]["addr_info"]
    for addr in lo:
        assert ipaddress.ip_address(addr["local"]).is_loopback, addr
    block = ipaddress.ip_network(f"{lab.addresses.prefix}.0/24")
    for link in ip_json("addr", "show"):
        for addr in link.get("addr_info", []):
            if addr["family"] == "inet" and ipaddress.ip_address(addr["local"]) in block:
                # In the host's namespace the block appears only as the bridge's address.
                assert link["ifname"] == lab.podnet.bridge, link
                assert addr["local"] == lab.podnet.gateway == lab.addresses.node


def test_lab_hosts_the_pods_reach_have_namespaces_of_their_own(lab: Lab) -> None:
    """S3, the canaries and the control plane answer from their own namespaces; the node's
    processes (kwok, the node agent) stay in the host's, on the bridge's address."""
    status = {c.name: c for c in lab.status().components}
    host = netns_inode(os.getpid())
    for name in ("s3", "kube-apiserver", f"canary-{topology.CLUSTERS[0]}", "opensearch"):
        assert status[name].pid and netns_inode(status[name].pid) != host, name
    assert status["node-agent"].pid and netns_inode(status["node-agent"].pid) == host
    # A pod scrapes its canary (another namespace) and kwok (the node's address).
    assert lab.podnet is not None
    agent = lab.addresses.agent(0)
    wanted = (f"{lab.addresses.canary(0)}:8080", f"{lab.addresses.node}:10247")

    def health() -> dict[str, str]:
        targets = json.load(urllib.request.urlopen(
            f"http://{agent}:9090/api/v1/targets?state=active", timeout=5))["data"]
        return {t["labels"]["instance"]: t["health"] for t in targets["activeTargets"]}

    # A young agent reports a target "unknown" until its first scrape of it (5 s interval).
    found = poll("both targets scraped", lambda: (lambda h: h if all(
        h.get(w) != "unknown" for w in wanted) else None)(health()), 30, 1)
    for target in wanted:
        assert found.get(target) == "up", found


def test_a_blocked_port_is_local_to_one_pod(lab: Lab) -> None:
    """An nftables rule in receiver 1's namespace drops its gRPC port; receiver 0's same port
    still answers, and the rule is gone afterwards."""
    assert lab.podnet is not None
    import socket

    def connects(ip: str, port: int) -> bool:
        try:
            with socket.create_connection((ip, port), timeout=2):
                return True
        except OSError:
            return False

    one, zero = lab.addresses.receiver(1), lab.addresses.receiver(0)
    with lab.podnet.block_port(one, 10901):
        assert not connects(one, 10901)
        assert connects(one, 10902)  # only that port
        assert connects(zero, 10901)  # only that pod
    assert connects(one, 10901)


def test_lab_status_json_gives_each_pods_urls_by_port_name(lab: Lab) -> None:
    """A script finds Query's URL in `lab status --output json` and it answers."""
    from tests.conftest import cli

    result = cli("lab", "status", "--lab-dir", str(lab.dir), "--output", "json")
    rows = {c["name"]: c for c in json.loads(result.stdout)["components"]}
    query = next(row for name, row in rows.items()
                 if name.startswith("pod/monitoring/thanos-query"))
    assert query["urls"]["http"] == f"http://{lab.addresses.query}:10902", query
    assert query["urls"]["grpc"] == f"{lab.addresses.query}:10901", query
    with urllib.request.urlopen(query["urls"]["http"] + "/-/ready", timeout=5) as response:
        assert response.status == 200
    assert rows["s3"]["urls"] == {"http": f"http://{lab.addresses.s3}:9000"}
