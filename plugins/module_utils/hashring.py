"""Thanos Receive hashring files: the hash a receiver reports for the file it loaded.

A receiver exports `thanos_receive_config_hash`: the first 48 bits of the MD5 of the raw file
bytes, read little-endian, as a float (48 bits fit a float64's 53-bit mantissa). Computing the
same number locally from the file we wrote is how a ring change is proven to have reached
every receiver.
"""

from __future__ import annotations

import hashlib


def config_hash(content: bytes) -> float:
    """The value a Thanos receiver reports in thanos_receive_config_hash for `content`."""
    digest = hashlib.md5(content, usedforsecurity=False).digest()
    return float(int.from_bytes(digest[:6], "little"))
