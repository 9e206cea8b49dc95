"""Daily checklist wall time: `watchkeeper run checklist-daily` on one lab cluster, on the lab's
clusters, and on an inventory of N clusters (aliases of the lab's first workload cluster: same
agent, API server and volumes), forks 10. Prints wall time, CPU time (user + system of the
whole process tree: steadier than wall time on a shared machine) and peak RSS of the whole
process tree for each, and the ratio N/1. Target: 50 clusters <= 3x the time of one.

Needs a running lab (`watchkeeper lab up`; --lab-dir or WATCHKEEPER_LAB_DIR picks it).

    .venv/bin/python benchmarks/checklist.py [--lab-dir DIR] [--clusters 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchkeeper_lab import Lab, topology  # noqa: E402

from benchmarks._measure import measure, median  # noqa: E402


def alias_inventory(lab: Lab, root: Path, count: int) -> Path:
    """The lab's inventory with `count` aliases of its first workload cluster."""
    shutil.copytree(lab.inventory_dir / "group_vars", root / "group_vars")
    (root / "host_vars").mkdir()
    source = yaml.safe_load((lab.inventory_dir / "host_vars" /
                             f"{topology.CLUSTERS[0]}.yml").read_text())
    hosts = {}
    for i in range(1, count + 1):
        name = f"alias-{i:02d}"
        hosts[name] = {}
        # The alias keeps the real cluster label: ArgoCD destinations and Query series match.
        (root / "host_vars" / f"{name}.yml").write_text(
            yaml.safe_dump({**source, "wk_cluster": topology.CLUSTERS[0]}))
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=None)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lab = Lab(args.lab_dir)
    if not all(c.healthy for c in lab.status().components):
        print(f"the lab in {lab.dir} is not up and healthy: run `watchkeeper lab up`",
              file=sys.stderr)
        return 1
    watchkeeper = str(Path(sys.executable).parent / "watchkeeper")
    results: dict[str, tuple[float, float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, **lab.env(), "WATCHKEEPER_STATE_DIR": str(root / "state")}
        cases = [
            ("1 cluster", alias_inventory(lab, root / "inv1", 1), ""),
            (f"lab ({len(topology.CLUSTERS) + 1} clusters)", lab.inventory_dir, ""),
            (f"{args.clusters} clusters", alias_inventory(lab, root / "invN", args.clusters), ""),
        ]
        for label, inventory, limit in cases:
            times, cpus, peaks = [], [], []
            for i in range(args.repeat):
                run_dir = root / f"run-{len(results)}-{i}"
                cmd = [watchkeeper, "run", "checklist-daily", "-i", str(inventory), "-f",
                       str(args.forks), "--run-dir", str(run_dir), "--output", "json"]
                if limit:
                    cmd += ["--limit", limit]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                m = measure(cmd, env)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if m.returncode not in (0, 1):  # 1 = a check failed: still a timing
                    print(f"{label}: run failed rc={m.returncode} (see {run_dir}/report.md)",
                          file=sys.stderr)
                    return 1
                times.append(m.seconds)
                cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                peaks.append(m.peak_rss)
            results[label] = (median(times), median(cpus), max(peaks))
    print(f"checklist-daily, forks {args.forks}, median of {args.repeat} runs each")
    for label, (seconds, cpu, peak) in results.items():
        print(f"  {label:<22} {seconds:6.2f} s   CPU {cpu:6.2f} s"
              f"   peak RSS {peak / 2**20:7.1f} MiB")
    one, many = results["1 cluster"][0], results[f"{args.clusters} clusters"][0]
    print(f"  time ratio {args.clusters}/1: {many / one:.2f}  (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
