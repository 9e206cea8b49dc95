"""Lab figures: `up` of the whole lab (control plane, node agent, pods, storage) in a new lab
directory with the binaries already cached ("warm up", target <= 90 s), `up` again with
everything running, `up` after `down` (pods restarted, like a node reboot), total RSS once up,
and `down`. Target RSS <= 4 GiB.
The binaries' cold build is measured by `watchkeeper lab up` itself (it prints each build's
time) on a machine with an empty cache.

    .venv/bin/python benchmarks/lab.py [--settle 30]
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

from runbooks.lab import Lab  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds to let data flow before reading RSS")
    args = parser.parse_args()
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
    print(f"up, new lab dir, binaries cached: {cold:6.1f} s   (target <= 90 s)")
    print(f"up with everything running:       {warm:6.1f} s")
    print(f"up after down (pods restarted):   {again:6.1f} s")
    print(f"total RSS, {components} processes:   {rss / 2**30:6.2f} GiB (target <= 4 GiB),"
          f" after {args.settle:.0f} s of traffic")
    print(f"down:                      {down:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
