"""Lab figures: `up` of the whole lab (control plane, node agent, pods, storage) in a new lab
directory with the binaries already cached ("warm up", target <= 90 s), `up` again with
everything running, `up` after `down` (pods restarted, like a node reboot), total RSS once up,
and `down`. Target RSS <= 4 GiB.
With `--cold`, first a cold start as a newcomer's machine has it: empty lab cache, Go module
and build caches (temporary directories, removed afterwards), measured to the first runbook
result (`up`, then `watchkeeper run status` green; goal: under 12 minutes), printed beside
the warm figures.

    .venv/bin/python benchmarks/lab.py [--settle 30] [--cold]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchkeeper_lab import Lab  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to let data flow before reading RSS")
    parser.add_argument("--cold", action="store_true",
                        help="also measure a cold start (every build from empty caches)")
    args = parser.parse_args()
    cold_start = cold_first_result() if args.cold else None
    root = Path(tempfile.mkdtemp(prefix="wk-lab-bench-", dir="/var/tmp"))
    root.chmod(0o755)
    lab = Lab(root / "lab")
    try:
        t0 = time.perf_counter()
        lab.up()
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        lab.up()
        warm = time.perf_counter() - t0
        time.sleep(args.settle)
        rss = lab.rss_bytes()
        components = len([c for c in lab.status().components if c.pid])
        t0 = time.perf_counter()
        lab.down()
        down = time.perf_counter() - t0
        t0 = time.perf_counter()
        lab.up()
        again = time.perf_counter() - t0
    finally:
        lab.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)
    if cold_start is not None:
        print(f"cold up, empty caches (builds):   {cold_start[0]:6.1f} s")
        print(f"cold to first runbook result:     {cold_start[1]:6.1f} s   (goal < 720 s)")
    print(f"up, new lab dir, binaries cached: {cold:6.1f} s   (target <= 90 s)")
    print(f"up with everything running:       {warm:6.1f} s")
    print(f"up after down (pods restarted):   {again:6.1f} s")
    print(f"total RSS, {components} processes:   {rss / 2**30:6.2f} GiB (target <= 4 GiB),"
          f" after {args.settle:.0f} s of traffic")
    print(f"down:                             {down:6.1f} s")
    return 0


def cold_first_result() -> tuple[float, float]:
    """(cold `up` seconds, seconds to the first green `status` run) from empty caches."""
    import os
    import subprocess

    root = Path(tempfile.mkdtemp(prefix="wk-lab-cold-", dir="/var/tmp"))
    root.chmod(0o755)
    saved = {k: os.environ.get(k) for k in ("WATCHKEEPER_CACHE", "GOCACHE", "GOMODCACHE")}
    os.environ.update(WATCHKEEPER_CACHE=str(root / "cache"), GOCACHE=str(root / "gocache"),
                      GOMODCACHE=str(root / "gomod"))
    (root / "cache").mkdir()
    (root / "cache").chmod(0o755)
    lab = Lab(root / "lab")
    try:
        t0 = time.perf_counter()
        lab.up(progress=lambda line: print(f"  {time.perf_counter() - t0:6.0f} s {line}",
                                           flush=True))
        up = time.perf_counter() - t0
        status = subprocess.run(
            [str(Path(sys.executable).parent / "watchkeeper"), "run", "status", "-i",
             str(lab.inventory_dir), "--run-dir", str(root / "run")],
            env={**os.environ, **lab.env()}, capture_output=True, text=True)
        first = time.perf_counter() - t0
        if status.returncode != 0:
            print(status.stdout[-2000:], status.stderr[-2000:])
        return up, first
    finally:
        lab.down(purge=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=False)  # Go's read-only cache
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
