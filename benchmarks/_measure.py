"""Shared measurement helpers for the benchmarks: wall time and peak RSS of a process tree."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_bytes(root: int) -> int:
    """Sum of RSS over `root` and all its descendants, from /proc."""
    tree = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss: int
    returncode: int


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run `cmd`, sampling the RSS of its whole process tree every 50 ms."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=dict(env) if env else None, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_bytes(proc.pid))
            stop.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    rc = proc.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    return Measured(elapsed, peak, rc)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def run_runbook(inventory: Path, env: Mapping[str, str], runbook: str,
                limit: str, *extra: str) -> tuple[float, dict]:
    """`watchkeeper run RUNBOOK` against a lab as an operator runs it: (seconds, journal).
    Exits naming the runbook and its message when the run fails."""
    run_dir = Path(tempfile.mkdtemp(prefix="wk-bench-run-"))
    began = time.perf_counter()
    proc = subprocess.run(
        [str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "watchkeeper"), "run",
         runbook, "-i", str(inventory), "--limit", limit, "--run-dir", str(run_dir),
         "--output", "json", *extra],
        capture_output=True, text=True, env={**os.environ, **env})
    seconds = time.perf_counter() - began
    journal = json.loads((run_dir / "journal.json").read_text())
    shutil.rmtree(run_dir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{runbook} {' '.join(extra)} failed: {journal.get('message')}")
    return seconds, journal
