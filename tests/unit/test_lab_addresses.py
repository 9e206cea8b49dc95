"""Two labs never share addresses; a lab refuses an address something else holds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from watchkeeper_lab import Component, LabError, _check_free
from watchkeeper_lab.topology import Addresses, hashring


def test_two_lab_dirs_get_different_blocks(tmp_path: Path) -> None:
    a, b = Addresses.for_lab(tmp_path / "one"), Addresses.for_lab(tmp_path / "two")
    assert a.prefix != b.prefix
    assert Addresses.for_lab(tmp_path / "one") == a  # stable across runs


def test_pod_addresses_are_proxyable_as_root_and_loopback_otherwise(tmp_path: Path) -> None:
    import ipaddress

    routable = Addresses.for_lab(tmp_path, routable=True)
    # The API server's pod proxy refuses loopback pod IPs; 198.18.0.0/15 is never routed.
    assert ipaddress.ip_address(routable.receiver(0)) in ipaddress.ip_network("198.18.0.0/15")
    local = Addresses.for_lab(tmp_path, routable=False)
    assert local.prefix.startswith("127.") and not local.prefix.startswith("127.0.")


def test_hashring_is_one_catch_all_ring_of_grpc_endpoints(tmp_path: Path) -> None:
    ring = hashring(Addresses.for_lab(tmp_path), 3)
    assert len(ring) == 1 and ring[0]["tenants"] == []
    assert all(str(e).endswith(":10901") for e in ring[0]["endpoints"])  # type: ignore[union-attr]


def test_an_address_in_use_is_refused_with_the_component_named(tmp_path: Path) -> None:
    ip = Addresses.for_lab(tmp_path, routable=False).s3
    with socket.socket() as squatter:
        squatter.bind((ip, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        component = Component("s3", f"{ip}:{port}", "x", ("true",), "http://unused")
        with pytest.raises(LabError, match=rf"s3: {ip}:{port} is already in use"):
            _check_free(component)
    _check_free(component)  # free again once the other program is gone
