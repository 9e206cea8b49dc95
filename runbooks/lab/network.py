"""The lab's addresses on the loopback device.

Pod IPs must be global unicast for the API server's pod proxy (it refuses loopback 127/8), so
when it runs as root the lab takes its block from 198.18.0.0/15 (RFC 2544: set aside for
benchmarking, never routed, so no real network here uses it) and adds each address it uses to
`lo` as a /32. Without root it stays on 127/8: everything works except the pod proxy.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess


def can_add_addresses() -> bool:
    return os.geteuid() == 0


def _shown() -> str:
    return subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True, check=True).stdout


def ensure_address(ip: str) -> None:
    """Put `ip` on the loopback device (127/8 is there already)."""
    if ipaddress.ip_address(ip).is_loopback:
        return
    if f" {ip}/" not in _shown():
        subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True,
                       capture_output=True)


def remove_addresses(prefix: str) -> list[str]:
    """Remove this lab's addresses (`prefix` is its /24 as "a.b.c") from `lo`."""
    if prefix.startswith("127."):
        return []
    removed = []
    for line in _shown().splitlines():
        words = line.split()
        if "inet" in words:
            cidr = words[words.index("inet") + 1]
            if cidr.startswith(prefix + ".") and cidr.endswith("/32"):
                subprocess.run(["ip", "addr", "del", cidr, "dev", "lo"], check=False,
                               capture_output=True)
                removed.append(cidr)
    return removed
