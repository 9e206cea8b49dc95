"""Receiver management figures on the lab: time from a ring change to proven convergence
(the hashring runbook), time per scale step up and down (scale-receivers), and canary samples
lost during the scale up and down (target: zero), all measured in one run.

    .venv/bin/python benchmarks/receivers.py [--lab-dir DIR] [--rounds 2]

Without --lab-dir it brings up a lab of its own in /var/tmp and takes it down at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchkeeper_lab import Lab, topology  # noqa: E402

from benchmarks._measure import run_runbook  # noqa: E402

SCRAPE_SECONDS = 5


def run(lab: Lab, runbook: str, *extra: str) -> tuple[float, dict]:
    return run_runbook(lab.inventory_dir, lab.env(), runbook, "observability", *extra)


def step_message(journal: dict) -> str:
    return next(s["message"] for s in journal["steps"]
                if s["phase"] == "playbook" and s["status"] == "changed")


def canary_lost(lab: Lab, start: float, end: float) -> dict[str, tuple[float, float]]:
    """Samples lost per cluster: expected minus distinct sample times stored (the union of
    every replica's copy, dedup off), and, for comparison, minus what deduplicated Query
    returns (Thanos's penalty dedup skips samples when it switches replicas)."""
    time.sleep(20)  # the window's last samples reach Query
    lost = {}
    for cluster in topology.CLUSTERS:
        query = f'watchkeeper_lab_canary_total{{cluster="{cluster}"}}[{int(end - start)}s]'
        counts = []
        for dedup in ("false", "true"):
            url = (f"http://{lab.addresses.query}:10902/api/v1/query?"
                   + urllib.parse.urlencode({"query": query, "time": f"{end:.3f}",
                                             "dedup": dedup}))
            with urllib.request.urlopen(url, timeout=20) as response:
                rows = json.load(response)["data"]["result"]
            counts.append(len({float(t) for row in rows for t, _ in row["values"]}))
        expected = (end - start) / SCRAPE_SECONDS - 1  # -1: the window's edges
        lost[cluster] = (max(0.0, expected - counts[0]), max(0.0, expected - counts[1]))
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    own = args.lab_dir is None
    root = Path(tempfile.mkdtemp(prefix="wk-recv-bench-", dir="/var/tmp")) if own else None
    if root is not None:
        root.chmod(0o755)
    lab = Lab(args.lab_dir or root / "lab")  # type: ignore[operator]
    try:
        lab.up()
        ring, up, down, lost = [], [], [], []
        for _ in range(args.rounds):
            t, _ = run(lab, "hashring", "-e", "members=[thanos-receive-0,thanos-receive-1]")
            ring.append(t)
            run(lab, "hashring")
            start = time.time()
            t, journal = run(lab, "scale-receivers", "-e", "replicas=4")
            up.append((t, step_message(journal)))
            t, journal = run(lab, "scale-receivers", "-e", "replicas=3")
            down.append((t, step_message(journal)))
            lost.append(canary_lost(lab, start, time.time()))
    finally:
        if own:
            lab.down(purge=True)
            shutil.rmtree(root, ignore_errors=True)  # type: ignore[arg-type]
    print("ring change -> proven convergence on 3 receivers (whole hashring run):")
    print("   " + ", ".join(f"{t:.1f} s" for t in ring))
    print("scale step 3 -> 4 (whole run, gates included):")
    for t, msg in up:
        print(f"   {t:.1f} s   [{msg}]")
    print("scale step 4 -> 3 (whole run, gates included):")
    for t, msg in down:
        print(f"   {t:.1f} s   [{msg}]")
    print("canary samples lost during scale up + down (target 0), stored [as deduplicated"
          " Query shows them]:")
    for item in lost:
        print("   " + ", ".join(f"{c}: {v[0]:.0f} [{v[1]:.0f}]" for c, v in item.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
