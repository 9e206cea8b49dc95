"""Table tests of diagnose-disk-space's cause ranking (plugins/module_utils/diagnose_disk.py):
which cause a volume's content and usage point to first. Pure: no file system involved."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import diagnose, diagnose_disk

MIB = 2**20
NOW = 1_800_000_000.0


def usage(percent: float, directory: int | None = None) -> dict[str, Any]:
    total = 100 * MIB
    used = int(total * percent / 100)
    return {"total": total, "used": used, "available": total - used,
            "directory_bytes": used if directory is None else directory, "mount": "/data"}


def parts(wal: int = 0, blocks: int = 0, other: int = 0,
          unshipped_age: float | None = None) -> dict[str, Any]:
    unshipped = [] if unshipped_age is None else [("01ABC", MIB, NOW - unshipped_age)]
    return {"wal": wal, "chunks_head": 0, "blocks": 3 if blocks else 0, "block_bytes": blocks,
            "unshipped": unshipped, "shipper": unshipped_age is not None,
            "other": [("core.1", other)] if other else [], "tsdbs": ["/v"]}


@pytest.mark.parametrize(("case", "use", "content", "first", "status"), [
    ("healthy volume: nothing to blame", usage(30), parts(wal=30 * MIB), None, "ok"),
    ("full of WAL", usage(95), parts(wal=80 * MIB, blocks=15 * MIB), "wal_growing", "fail"),
    ("full of blocks", usage(85), parts(blocks=80 * MIB, wal=5 * MIB), "retention", "warn"),
    ("a dump beats the WAL", usage(95), parts(wal=30 * MIB, other=65 * MIB), "foreign_data",
     "fail"),
    ("unshipped blocks beat everything", usage(95), parts(blocks=90 * MIB, unshipped_age=7200),
     "uploads_failing", "fail"),
    ("unshipped blocks on a roomy volume still warn", usage(20),
     parts(blocks=20 * MIB, unshipped_age=7200), "uploads_failing", "warn"),
    ("a block inside the grace is not late", usage(20), parts(blocks=20 * MIB,
                                                              unshipped_age=60), None, "ok"),
    ("the filesystem is full of someone else's data", usage(95, directory=10 * MIB),
     parts(wal=10 * MIB), "shared_filesystem", "fail"),
    ("a full volume with no better explanation is named itself", usage(92),
     parts(wal=10 * MIB, blocks=10 * MIB, other=10 * MIB), "volume_usage", "fail"),
])
def test_the_most_likely_cause_of_a_full_volume(case: str, use: dict[str, Any],
                                               content: dict[str, Any], first: str | None,
                                               status: str) -> None:
    found = diagnose_disk.volume_findings("/v", "pv x", use, content, 0.0, {}, 1800.0, NOW)
    top = diagnose.most_likely(found)
    if first is None:
        assert top is None, (case, found)
    else:
        assert top is not None and top["cause"] == first, (case, diagnose.rank(found))
        assert top["status"] == status, case


def test_growth_gives_the_time_to_full() -> None:
    found = diagnose_disk.volume_findings("/v", "pv x", usage(50), parts(wal=50 * MIB),
                                          MIB / 60.0, {}, 1800.0, NOW)
    assert "growing 1.0 MiB/min, full in ~50 min" in found[0]["evidence"], found[0]
