"""Starting and stopping the lab's processes, by the PIDs the lab recorded.

A PID alone can be reused by another program after ours died, so each record also keeps the
process start time from /proc; `down` only signals a PID whose start time still matches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def proc_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time since boot, in clock ticks), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class Record:
    """A process the lab started."""

    pid: int
    start_ticks: int
    argv0: str

    def alive(self) -> bool:
        if proc_start_ticks(self.pid) != self.start_ticks:
            return False
        try:  # a zombie has /proc/PID/stat too
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def rss_bytes(self) -> int:
        """RSS of the process and its children (OpenSearch's launcher forks the JVM)."""
        total = 0
        for pid in [self.pid, *_descendants(self.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def to_dict(self) -> dict[str, object]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "argv0": self.argv0}


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, prefix: Sequence[str] = ()) -> Record:
    """Start a detached process (own session: Ctrl-C in the terminal does not reach it).
    `prefix` runs it through a launcher that execs it in place (`ip netns exec NS`), so the
    PID recorded is the program's own."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        proc = subprocess.Popen(
            [*prefix, *argv], stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
    ticks = proc_start_ticks(proc.pid)
    return Record(proc.pid, ticks or 0, argv[0])


def stop(record: Record, grace_seconds: float = 60.0) -> None:
    """SIGTERM, wait up to `grace_seconds` (receivers flush and upload on shutdown), then
    SIGKILL. Signals the process group the lab created, so helper children go too."""
    if not record.alive():
        return
    try:
        os.killpg(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not record.alive():
            _reap(record.pid)
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    _reap(record.pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
