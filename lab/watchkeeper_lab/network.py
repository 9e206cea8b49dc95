"""The lab's pod network: every pod, and every lab host the pods reach, in a network namespace
of its own, as a CNI bridge plugin makes it.

Run as root, the lab makes one Linux bridge in the host namespace (its address is the lab
node's, the pods' gateway) and, for each address of its /24, a network namespace with `lo` up
and one end of a veth pair (`eth0`) holding that address; the other end is a port of the
bridge. A program in a namespace binds `0.0.0.0` as it would in a pod: two pods may use the
same port. The host reaches every address through the bridge's on-link route, and the API
server's pod proxy works (pod IPs are not loopback). The block comes from 198.18.0.0/15
(RFC 2544: set aside for benchmarking, never routed) and exists only on the bridge and inside
the namespaces: nothing is added to the host's `lo` or any interface the lab did not create.

Names carry the lab's tag (from its block), so two labs never share one and cleaning up finds
exactly this lab's objects by name: bridge `wk<tag>br`, namespaces `wk<tag>-<last octet>`,
the host ends of the veth pairs `wk<tag>v<last octet>`.

Without root the lab stays on 127/8 ("reduced mode"): no namespaces, each program binds its
own loopback address and `0.0.0.0:` in a pod's arguments is rewritten to the pod IP;
everything works except the pod proxy and the per-pod faults.

Faults are local to one namespace: `block_port` (an nftables input rule in that namespace),
`drop_route` (a blackhole route there) and `delay` (a proxy in that namespace that holds
every byte for the given time; the kernels these labs run on have no `netem` qdisc).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from watchkeeper_lab.topology import Addresses


class NetworkError(RuntimeError):
    """An `ip`/`nft` command of the lab's network failed; the message names it."""


def enabled() -> bool:
    """Pod namespaces need root (and iproute2); otherwise the lab runs in reduced mode."""
    return os.geteuid() == 0 and os.environ.get("WATCHKEEPER_LAB_PODNET", "1") != "0"


def _ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def namespaces() -> list[str]:
    out = _ip("-j", "netns", "list", check=False).strip()
    return [n["name"] for n in json.loads(out or "[]")]


def links() -> list[str]:
    return [link["ifname"] for link in json.loads(_ip("-j", "link", "show").strip() or "[]")]


def pids_in(netns: str) -> list[int]:
    return [int(p) for p in _ip("netns", "pids", netns, check=False).split()]


@dataclass(frozen=True)
class PodNetwork:
    """One lab's bridge and namespaces, for the /24 `prefix` ("198.18.N")."""

    prefix: str

    @property
    def tag(self) -> str:
        second, third = (int(x) for x in self.prefix.split(".")[1:3])
        return f"{second - 18}{third:02x}"

    @property
    def bridge(self) -> str:
        return f"wk{self.tag}br"

    @property
    def gateway(self) -> str:
        """The bridge's own address: the lab node's (kwok, the node agent's kubelet
        endpoint), the pods' gateway."""
        return Addresses(self.prefix).node

    def netns(self, ip: str) -> str:
        """The namespace that holds `ip`."""
        return f"wk{self.tag}-{self._last(ip)}"

    def veth(self, ip: str) -> str:
        return f"wk{self.tag}v{self._last(ip)}"

    def _last(self, ip: str) -> int:
        if not ip.startswith(self.prefix + "."):
            raise NetworkError(f"{ip} is not in this lab's block {self.prefix}.0/24")
        return int(ip.rsplit(".", 1)[1])

    def mac(self, ip: str) -> str:
        """eth0's MAC in `ip`'s namespace: locally administered, from the address."""
        octets = [int(x) for x in ip.split(".")]
        return "02:77:" + ":".join(f"{o:02x}" for o in octets)

    def exec_prefix(self, ip: str) -> list[str]:
        """argv prefix that runs a program inside `ip`'s namespace."""
        return ["ip", "netns", "exec", self.netns(ip)]

    # ------------------------------------------------------------------ make
    def ensure_bridge(self) -> None:
        """The bridge with the gateway address, up (idempotent)."""
        if self.bridge not in links():
            _ip("link", "add", self.bridge, "type", "bridge")
        _no_ipv6(self.bridge)
        _ip("addr", "replace", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def ensure_host(self, ip: str) -> str:
        """`ip`'s namespace with its veth on the bridge, addressed and routed (idempotent:
        a namespace that exists is completed, never recreated). Returns its name."""
        if ip == self.gateway:
            raise NetworkError(f"{ip} is the bridge's own address (the node's), not a pod's")
        netns, veth = self.netns(ip), self.veth(ip)
        if netns not in namespaces():
            _ip("netns", "add", netns)
        if veth not in links():
            # A MAC derived from the address: a namespace made again for the same address
            # (after `down`, or a crash) keeps its MAC, so peers' ARP caches stay right.
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "address",
                self.mac(ip), "netns", netns)
        _no_ipv6(veth)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "replace", f"{ip}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "route", "replace", "default", "via", self.gateway)
        return netns

    # ------------------------------------------------------------------ clean
    def own_namespaces(self) -> list[str]:
        return [n for n in namespaces() if n.startswith(f"wk{self.tag}-")
                and n[len(f"wk{self.tag}-"):].isdigit()]

    def own_links(self) -> list[str]:
        mine = []
        for name in links():
            rest = name[len(f"wk{self.tag}"):] if name.startswith(f"wk{self.tag}") else None
            if rest == "br" or (rest and rest[0] == "v" and rest[1:].isdigit()):
                mine.append(name)
        return mine

    def clean_leftovers(self) -> list[str]:
        """A crashed lab's namespaces that no process uses any more, and veths without a
        namespace: removed. Returns what it removed."""
        removed = []
        for netns in self.own_namespaces():
            if not pids_in(netns):
                _ip("netns", "del", netns, check=False)
                removed.append(netns)
        present = set(self.own_namespaces())
        for link in self.own_links():
            if link != self.bridge and f"wk{self.tag}-{link.split('v')[-1]}" not in present:
                _ip("link", "del", link, check=False)
                removed.append(link)
        return removed

    def teardown(self) -> list[str]:
        """Every namespace, veth and the bridge of this lab (`down`)."""
        removed = []
        for netns in self.own_namespaces():
            _ip("netns", "del", netns, check=False)
            removed.append(netns)
        for link in self.own_links():
            if link != self.bridge:
                _ip("link", "del", link, check=False)
                removed.append(link)
        if self.bridge in links():
            _ip("link", "del", self.bridge, check=False)
            removed.append(self.bridge)
        return removed

    # ------------------------------------------------------------------ faults
    @contextlib.contextmanager
    def block_port(self, ip: str, port: int) -> Iterator[None]:
        """TCP to `ip`:`port` dropped inside that host's namespace (from the host and from
        every pod alike), as a network policy or a firewall makes it; lifted on exit."""
        netns, table = self.netns(ip), f"wk_block_{port}"
        nft = ["ip", "netns", "exec", netns, "nft"]
        _run([*nft, "add", "table", "inet", table])
        try:
            _run([*nft, "add", "chain", "inet", table, "in",
                  "{ type filter hook input priority 0 ; }"])
            _run([*nft, "add", "rule", "inet", table, "in", "tcp", "dport", str(port), "drop"])
            yield
        finally:
            _run([*nft, "delete", "table", "inet", table])

    @contextlib.contextmanager
    def drop_route(self, ip: str, destination: str) -> Iterator[None]:
        """`ip`'s namespace loses its route to `destination` (an `unreachable` route: sends
        fail at once with 'no route to host'), restored on exit. Only that pod is cut off."""
        netns = self.netns(ip)
        _ip("-n", netns, "route", "add", "unreachable", f"{destination}/32")
        try:
            yield
        finally:
            _ip("-n", netns, "route", "del", "unreachable", f"{destination}/32", check=False)

    @contextlib.contextmanager
    def delay(self, ip: str, destination: str, port: int, seconds: float) -> Iterator[None]:
        """A slow link from `ip` to `destination`:`port`: inside `ip`'s namespace, new
        connections to it are redirected (nftables) to a proxy in the same namespace that
        holds every byte `seconds` in each direction before passing it on. Lifted on exit
        (connections made while it stood stay slow until they close)."""
        netns = self.netns(ip)
        listen = 15000 + port % 1000
        mark = 0x5157
        proxy = subprocess.Popen(
            [*self.exec_prefix(ip), sys.executable, "-m", "watchkeeper_lab.slowlink",
             "--listen", f"127.0.0.1:{listen}", "--target", f"{destination}:{port}",
             "--delay", str(seconds), "--mark", str(mark)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        table = f"wk_delay_{port}"
        nft = ["ip", "netns", "exec", netns, "nft"]
        try:
            _wait_listening(netns, listen, proxy)
            _run([*nft, "add", "table", "ip", table])
            _run([*nft, "add", "chain", "ip", table, "out",
                  "{ type nat hook output priority -100 ; }"])
            _run([*nft, "add", "rule", "ip", table, "out", "meta", "mark", "!=", str(mark),
                  "ip", "daddr", destination, "tcp", "dport", str(port), "redirect", "to",
                  f":{listen}"])
            # Connections made before the redirect keep their destination (conntrack): reset
            # them on their next packet, so the client reconnects through the slow link.
            # Redirected packets already carry 127.0.0.1 here (nat runs before filter).
            _run([*nft, "add", "chain", "ip", table, "cut",
                  "{ type filter hook output priority 0 ; }"])
            _run([*nft, "add", "rule", "ip", table, "cut", "meta", "mark", "!=", str(mark),
                  "ip", "daddr", destination, "tcp", "dport", str(port), "reject", "with",
                  "tcp", "reset"])
            yield
        finally:
            _run([*nft, "delete", "table", "ip", table], check=False)
            proxy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proxy.wait(5)
            if proxy.poll() is None:
                proxy.kill()


def _no_ipv6(link: str) -> None:
    """No IPv6 link-local address on the lab's host-side links: the lab's only addresses in
    the host's namespace are loopback and the bridge's one IPv4 address."""
    path = f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6"
    if os.path.exists(path):
        with open(path, "w") as handle:
            handle.write("1\n")


def _run(argv: list[str], check: bool = True) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"{' '.join(argv)}: {proc.stderr.strip()}")


def _wait_listening(netns: str, port: int, proxy: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            err = proxy.stderr.read().decode() if proxy.stderr else ""
            raise NetworkError(f"the slow-link proxy exited: {err.strip()}")
        out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Htln", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise NetworkError(f"the slow-link proxy did not listen on :{port} in {netns} within 10 s")


def for_prefix(prefix: str) -> PodNetwork | None:
    """The pod network of a lab whose block is `prefix`, or None in reduced mode."""
    if not enabled() or ipaddress.ip_address(prefix + ".1").is_loopback:
        return None
    return PodNetwork(prefix)
