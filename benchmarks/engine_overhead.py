"""Engine overhead: `watchkeeper run ping` vs `ansible-playbook` of the same playbook.

Both run the same no-op playbook against the same inventory with the same collection path and
interpreter, interleaved, N times each (median; the fastest of each, less sensitive to other
load on the machine, is printed too). Prints both and the ratio. Target: ratio <= 1.15.

Then where watchkeeper's time goes: the phases of instrumented runs (median of 3; see
benchmarks/_profile_run.py), the ansible-playbook child's lifetime beside plain
ansible-playbook's, and the top entries of a cProfile of one run by internal time
(`--no-profile` skips this).

    .venv/bin/python benchmarks/engine_overhead.py [--runs 7] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._measure import measure, median  # noqa: E402
from runbooks.collection import collections_path, playbook_path  # noqa: E402

PHASES = (
    ("process start -> interpreter up", "start", "interpreter up"),
    ("imports (runbooks.cli and what it pulls)", "interpreter up", "imported runbooks.cli"),
    ("(the hooks: ansible_runner, report imported)", "imported runbooks.cli", "hooks set"),
    ("parse, registry, inventory, validate", "hooks set", "ansible_runner.run called"),
    ("ansible-runner: prepare, spawn", "ansible_runner.run called", "ansible-playbook spawned"),
    ("ansible-playbook child (pexpect)", "ansible-playbook spawned",
     "ansible-playbook exited (close)"),
    ("ansible-runner: close, finish", "ansible-playbook exited (close)",
     "ansible_runner.run returned"),
    ("journal, reports, metrics", "ansible_runner.run returned", "main returned"),
    ("interpreter exit", "main returned", "end"),
)


def profile(inventory: Path, env: dict[str, str], tmp: str, plain_median: float) -> None:
    """Print where the time of `watchkeeper run ping` goes."""
    runs: list[dict[str, float]] = []
    for i in range(4):  # the first warms the inventory cache of this state directory
        marks_file = f"{tmp}/marks{i}.json"
        started = time.time()
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "_profile_run.py"), marks_file,
                        "-", "run", "ping", "-i", str(inventory), "--run-dir",
                        f"{tmp}/profiled{i}", "--output", "json"],
                       env=env, stdout=subprocess.DEVNULL, check=True)
        ended = time.time()
        marks = {name: at for name, at in json.loads(Path(marks_file).read_text())}
        marks.update(start=started, end=ended)
        if i:
            runs.append(marks)
    total = median([r["end"] - r["start"] for r in runs])
    print(f"\nwhere `watchkeeper run ping` spends its {total:.3f} s (median of {len(runs)}"
          " instrumented runs):")
    for title, begin, end in PHASES:
        seconds = median([r[end] - r[begin] for r in runs])
        print(f"  {title:45} {seconds:6.3f} s")
    print(f"  (plain ansible-playbook, whole process:      {plain_median:6.3f} s)")
    stats_file = f"{tmp}/profile.out"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "_profile_run.py"),
                    f"{tmp}/marks-profiled.json", stats_file, "run", "ping", "-i",
                    str(inventory), "--run-dir", f"{tmp}/profiled-cprofile", "--output",
                    "json"], env=env, stdout=subprocess.DEVNULL, check=True)
    print("\ncProfile of one run, top 20 by internal time (the child's lifetime shows as"
          " pexpect's poll; the rest is this process's own work, mostly imports):")
    pstats.Stats(stats_file, stream=sys.stdout).sort_stats("tottime").print_stats(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--inventory", type=Path,
                        default=REPO / "tests" / "fixtures" / "inventory")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the phases and the cProfile of watchkeeper's run")
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
        print(f"fastest of each:           {min(ours):.3f} / {min(theirs):.3f} s ="
              f" {min(ours) / min(theirs):.3f}")
        if not args.no_profile:
            profile(args.inventory, env, tmp, ap_median)
    return 0


if __name__ == "__main__":
    sys.exit(main())
