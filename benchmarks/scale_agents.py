"""scale-agents figures on the lab: the time of each phase (pre-gate, playbook, each post-gate)
and of each step inside the playbook (create, Ready with the new modulus, reconfigure and
restart, drain, remove) for 1 -> 2 and 2 -> 1 shards on one workload cluster.

    .venv/bin/python benchmarks/scale_agents.py --lab-dir DIR [--cluster k8s-cluster-01]
        [--rounds 1] [--shards 2]

It needs a running lab (`watchkeeper lab up --lab-dir DIR`) whose agent has one shard, and
leaves it with one shard.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchkeeper_lab import Lab, topology  # noqa: E402

from benchmarks._measure import run_runbook  # noqa: E402

STEP_TIME = re.compile(r"^(?P<what>.*) \((?P<seconds>\d+) s\)$")


def run(lab: Lab, cluster: str, shards: int) -> tuple[float, dict]:
    return run_runbook(lab.inventory_dir, lab.env(), "scale-agents", cluster,
                       "-e", f"shards={shards}", "-e", "allow_drift=true")


def report(label: str, seconds: float, journal: dict) -> None:
    print(f"{label}: {seconds:.1f} s in all")
    for step in journal["steps"]:
        took = (datetime.fromisoformat(step["end"]) -
                datetime.fromisoformat(step["start"])).total_seconds()
        print(f"  {step['phase']:<10} {step['name'][:48]:<48} {took:7.1f} s")
        if step["phase"] == "playbook":
            for part in step["message"].split("; "):
                match = STEP_TIME.match(part)
                if match:
                    print(f"    {match['what'][:70]:<70} {match['seconds']:>5} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--cluster", default=topology.CLUSTERS[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    lab = Lab(args.lab_dir)
    for round_ in range(1, args.rounds + 1):
        seconds, journal = run(lab, args.cluster, args.shards)
        report(f"round {round_}: 1 -> {args.shards} shards on {args.cluster}", seconds, journal)
        seconds, journal = run(lab, args.cluster, 1)
        report(f"round {round_}: {args.shards} -> 1 shard on {args.cluster}", seconds, journal)


if __name__ == "__main__":
    main()
