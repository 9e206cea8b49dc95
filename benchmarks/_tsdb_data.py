"""Real Prometheus TSDB blocks of a chosen size, for the TSDB backup benchmark and lab tests.

`promtool tsdb create-blocks-from openmetrics` (Debian's prometheus package) writes the base
blocks from generated samples (random values, so chunks compress as real gauges do: about 8
bytes a sample); bigger data sets are made of copies of those blocks under new ULIDs (meta.json
rewritten), which Prometheus opens as overlapping blocks (always allowed since 2.39).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

METRIC = "wk_backup_test"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(ms: int | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, Crockford base32 (26 characters)."""
    value = ((ms if ms is not None else int(time.time() * 1000)) << 80) | random.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@dataclass(frozen=True)
class GeneratedTsdb:
    path: Path
    series: int
    start: int  # seconds, first sample
    end: int  # seconds, last sample
    step: int
    blocks: tuple[str, ...]

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        raise RuntimeError("promtool not found: apt-get install prometheus (Debian's package)")
    return found


def generate(path: Path, series: int = 1000, hours: int = 6, step: int = 15,
             copies: int = 0, end: int | None = None) -> GeneratedTsdb:
    """Blocks of `series` gauges `wk_backup_test{i="N"}` every `step` s over `hours` hours
    ending at `end` (default: the last full hour before now - 1h), plus `copies` copies of
    every block under new ULIDs. `path` becomes a TSDB directory."""
    path.mkdir(parents=True, exist_ok=True)
    end = end or (int(time.time()) // 3600 * 3600 - 3600)
    start = end - hours * 3600
    source = path.parent / f".{path.name}.om"
    rng = random.Random(42)
    with source.open("w") as out:
        out.write(f"# HELP {METRIC} generated\n# TYPE {METRIC} gauge\n")
        for ts in range(start, end + 1, step):
            out.write("".join(f'{METRIC}{{i="{i}"}} {rng.random()} {ts}\n'
                              for i in range(series)))
        out.write("# EOF\n")
    try:
        subprocess.run([_promtool(), "tsdb", "create-blocks-from", "openmetrics", str(source),
                        str(path)], check=True, capture_output=True, timeout=1800)
    finally:
        source.unlink()
    base = sorted(p.name for p in path.iterdir() if (p / "meta.json").is_file())
    blocks = list(base)
    for _ in range(copies):
        for name in base:
            blocks.append(copy_block(path / name, path).name)
    return GeneratedTsdb(path, series, start, end, step, tuple(sorted(blocks)))


def copy_block(block: Path, into: Path) -> Path:
    """A copy of `block` under a new ULID in `into` (its meta.json says the new ULID)."""
    meta = json.loads((block / "meta.json").read_text())
    ulid = new_ulid(int(meta["maxTime"]))
    target = into / ulid
    shutil.copytree(block, target)
    meta["ulid"] = ulid
    meta.setdefault("compaction", {})["sources"] = [ulid]
    tmp = target / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent="\t"))
    os.replace(tmp, target / "meta.json")
    return target
