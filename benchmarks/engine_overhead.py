"""Engine overhead: `watchkeeper run ping` vs `ansible-playbook` of the same playbook.

Both run the same no-op playbook against the same inventory with the same collection path and
interpreter, interleaved, N times each (median). Prints both medians and the ratio.
Target: ratio <= 1.15.

    .venv/bin/python benchmarks/engine_overhead.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._measure import measure, median  # noqa: E402
from runbooks.collection import collections_path, playbook_path  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--inventory", type=Path,
                        default=REPO / "tests" / "fixtures" / "inventory")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WATCHKEEPER_STATE_DIR": f"{tmp}/state",
               "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
               "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
               "ANSIBLE_LOCALHOST_WARNING": "0"}
        plain = [str(bindir / "ansible-playbook"), "-i", str(args.inventory),
                 str(playbook_path("ping.yml"))]
        ours: list[float] = []
        theirs: list[float] = []
        measure(plain, env)  # warm the page cache for both
        for i in range(args.runs):
            wk = [str(bindir / "watchkeeper"), "run", "ping", "-i", str(args.inventory),
                  "--run-dir", f"{tmp}/run{i}", "--output", "json"]
            a, b = measure(wk, env), measure(plain, env)
            if a.returncode or b.returncode:
                print(f"run {i} failed: watchkeeper rc={a.returncode},"
                      f" ansible-playbook rc={b.returncode}", file=sys.stderr)
                return 1
            ours.append(a.seconds)
            theirs.append(b.seconds)
    wk_median, ap_median = median(ours), median(theirs)
    print(f"runs each:                 {args.runs} (interleaved)")
    print(f"ansible-playbook median:   {ap_median:.3f} s  (all: "
          + ", ".join(f"{v:.2f}" for v in theirs) + ")")
    print(f"watchkeeper run median:    {wk_median:.3f} s  (all: "
          + ", ".join(f"{v:.2f}" for v in ours) + ")")
    print(f"ratio watchkeeper/ansible: {wk_median / ap_median:.3f}  (target <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
