"""The hashring hash must equal what a receiver reports, or convergence can never be proven.
The live comparison against real receivers is in tests/lab/test_kubernetes.py."""

from __future__ import annotations

from ansible_collections.watchkeeper.platform.plugins.module_utils.hashring import config_hash


def test_hash_depends_on_every_byte_and_fits_a_float_exactly() -> None:
    a = config_hash(b'[{"endpoints": ["a:10901"]}]\n')
    b = config_hash(b'[{"endpoints": ["a:10901"]}] \n')  # whitespace changes the file's hash
    assert a != b
    assert 0 <= a < 2**48 and a == int(a)


def test_known_value_little_endian_48_bits() -> None:
    # md5(b"") = d41d8cd98f00b204...; bytes d4 1d 8c d9 8f 00 read little-endian.
    assert config_hash(b"") == float(0x008FD98C1DD4)
