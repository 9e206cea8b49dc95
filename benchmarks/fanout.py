"""Fan-out: `watchkeeper run status` over 1 cluster and over 50 clusters (aliases of the same
real agent and receiver, Debian's prometheus), forks 10. Prints wall time and peak RSS of the
whole process tree for each, and the ratio. Target: 50 clusters <= 3x the time of one.

    .venv/bin/python benchmarks/fanout.py [--clusters 50] [--forks 10] [--repeat 3]
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
from tests.conftest import AGENT_USER, PromPair, start_prom_pair  # noqa: E402


def write_inventory(root: Path, pair: PromPair, count: int) -> Path:
    root.mkdir(parents=True)
    lines = ["all:", "  vars:", "    ansible_connection: local",
             f"    wk_agent_url: {pair.agent_url}",
             f"    wk_agent_auth: {{username: {AGENT_USER},"
             " password: {env: WK_TEST_AGENT_PASSWORD}}",
             f"    wk_receive_remote_write_url: {pair.receiver_url}/api/v1/write",
             f"    wk_receive_http_urls: [{pair.receiver_url}]",
             "  hosts:"]
    lines += [f"    k8s-cluster-{i:02d}: {{}}" for i in range(1, count + 1)]
    (root / "hosts.yml").write_text("\n".join(lines) + "\n")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    watchkeeper = str(Path(sys.executable).parent / "watchkeeper")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pair = start_prom_pair(root / "prom")
        try:
            env = {**os.environ, **pair.env, "WATCHKEEPER_STATE_DIR": str(root / "state")}
            results = {}
            for count in (1, args.clusters):
                inventory = write_inventory(root / f"inv{count}", pair, count)
                times, peaks = [], []
                for i in range(args.repeat):
                    m = measure([watchkeeper, "run", "status", "-i", str(inventory), "-f",
                                 str(args.forks), "--run-dir", str(root / f"run{count}-{i}"),
                                 "--output", "json"], env)
                    if m.returncode != 0:
                        print(f"{count} clusters: run failed rc={m.returncode}"
                              f" (see {root}/run{count}-{i}/report.md)", file=sys.stderr)
                        return 1
                    times.append(m.seconds)
                    peaks.append(m.peak_rss)
                results[count] = (median(times), max(peaks))
        finally:
            pair.stop()
    one, many = results[1], results[args.clusters]
    print(f"status, forks {args.forks}, median of {args.repeat} runs each")
    print(f"  1 cluster:    {one[0]:6.2f} s   peak RSS {one[1] / 2**20:7.1f} MiB")
    print(f"  {args.clusters} clusters: {many[0]:6.2f} s   peak RSS {many[1] / 2**20:7.1f} MiB")
    print(f"  time ratio {args.clusters}/1: {many[0] / one[0]:.2f}  (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
