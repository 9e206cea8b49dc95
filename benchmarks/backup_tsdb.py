"""TSDB backup throughput: backup-tsdb's upload code vs `aws s3 cp --recursive`, and restore-tsdb's
download (with sha256 verification) vs a plain `aws s3 cp --recursive` download.

Generates real TSDB blocks of at least --size-gib (promtool's blocks and copies of them under new
ULIDs), then, against the lab's S3 (MinIO; `watchkeeper lab up` first):
- uploads the directory with s3_backup.back_up (transfer manager, sha256 of every file, listing
  verification, manifest last) in a child process, sampling the RSS of that process;
- uploads the same directory with awscli (PyPI's `aws`, from this venv or PATH);
- restores our backup with s3_backup.download_backup (sha256 of every file checked) and
  downloads the same prefix with awscli.
Prints MB/s of each and the ratio (target >= 1.0x awscli), peak RSS of our upload (target
<= 300 MiB). Everything it wrote (every object version under its prefix, the files) is removed.

    .venv/bin/python benchmarks/backup_tsdb.py [--size-gib 1.0] [--runs 3] [--lab-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from watchkeeper_lab import Lab  # noqa: E402

from benchmarks._measure import Measured, measure  # noqa: E402
from benchmarks._tsdb_data import copy_block, generate  # noqa: E402
from runbooks.collection import collections_path  # noqa: E402
from runbooks.inventory import load_inventory  # noqa: E402

MIB = 1024 * 1024
CLUSTER = "observability"


def _s3b() -> Any:
    sys.path.insert(0, str(collections_path()))
    from ansible_collections.watchkeeper.platform.plugins.module_utils import s3_backup

    return s3_backup


def _client(inventory: Path) -> tuple[Any, str]:
    from runbooks.clients import s3_client

    cluster = load_inventory(inventory).cluster(CLUSTER)
    return s3_client(cluster), cluster.s3_bucket_backups


def child(args: argparse.Namespace) -> int:
    """Runs in the measured child process: our upload or our restore."""
    s3_backup = _s3b()
    client, bucket = _client(args.inventory)

    def progress(s: dict[str, Any]) -> None:
        print(f"  {s['bytes_done'] / MIB:8.0f} / {s['bytes_total'] / MIB:.0f} MiB"
              f"  {s['mb_per_s']:6.1f} MB/s", file=sys.stderr, flush=True)

    if args.child == "upload":
        manifest, _, seconds = s3_backup.back_up(
            client, bucket, args.prefix, str(args.path), CLUSTER, args.prefix.split("/")[-2],
            {"benchmark": "backup_tsdb"}, s3_backup.transfer_config(),
            progress_callback=progress, progress_interval=5.0)
        result = {"bytes": manifest["total_bytes"], "files": manifest["file_count"],
                  "seconds": seconds}
    else:
        manifest = s3_backup.read_manifest(client, bucket, args.prefix)
        started = time.monotonic()
        tracker = s3_backup.Progress(manifest["total_bytes"], progress, 5.0)
        with tracker:
            s3_backup.download_backup(client, bucket, args.prefix, manifest, str(args.path),
                                      s3_backup.transfer_config(), tracker)
        result = {"bytes": manifest["total_bytes"], "seconds": time.monotonic() - started}
    Path(args.result).write_text(json.dumps(result))
    return 0


def _aws() -> str:
    for candidate in (Path(sys.executable).parent / "aws", shutil.which("aws")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise SystemExit("awscli not found: pip install awscli (PyPI) into this venv")


def _purge(client: Any, bucket: str, prefix: str) -> None:
    """Every version of every object under `prefix` (the lab's bucket is versioned)."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(doomed), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": doomed[start:start + 1000],
                                                         "Quiet": True})


def _warm(path: Path) -> None:
    """Read every file once so both uploads start from the page cache."""
    for item in path.rglob("*"):
        if item.is_file():
            with item.open("rb") as handle:
                while handle.read(8 * MIB):
                    pass


def _line(label: str, size: int, m: Measured) -> float:
    rate = size / 1e6 / m.seconds
    print(f"{label:<38} {m.seconds:7.2f} s {rate:8.1f} MB/s   peak RSS"
          f" {m.peak_rss / MIB:6.1f} MiB   rc={m.returncode}")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--lab-dir", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--keep", action="store_true", help="keep the generated TSDB")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--child", choices=["upload", "restore"], help=argparse.SUPPRESS)
    parser.add_argument("--inventory", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    lab = Lab(args.lab_dir)
    health = {c.name: c.healthy for c in lab.status().components}
    if not health.get("s3"):
        print(f"the lab's S3 is not up ({lab.dir}): run `watchkeeper lab up` first",
              file=sys.stderr)
        return 2
    env = {**os.environ, **lab.env()}
    os.environ.update(lab.env())
    inventory = lab.inventory_dir
    client, bucket = _client(inventory)
    cluster = load_inventory(inventory).cluster(CLUSTER)
    aws = _aws()
    work = Path(tempfile.mkdtemp(prefix="wk-bench-tsdb-", dir=args.workdir))
    run_prefix = f"wk-bench-tsdb/{os.getpid()}-{int(time.time())}/"
    try:
        started = time.monotonic()
        data = generate(work / "tsdb", series=4000, hours=6)
        base = list(data.blocks)
        target = int(args.size_gib * 1024 * MIB)
        size = data.size()
        copies = 0
        while size < target:
            for name in base:
                size += sum(f.stat().st_size for f in copy_block(work / "tsdb" / name,
                                                                 work / "tsdb").rglob("*")
                            if f.is_file())
            copies += 1
        files = [f for f in (work / "tsdb").rglob("*") if f.is_file()]
        blocks = len([d for d in (work / "tsdb").iterdir() if (d / "meta.json").exists()])
        print(f"generated TSDB: {size / MIB:.0f} MiB ({size / 1e9:.2f} GB), {blocks} blocks,"
              f" {len(files)} files ({len(base)} promtool blocks of {data.series} series x"
              f" 6 h, {copies} copies) in {time.monotonic() - started:.1f} s")
        _warm(work / "tsdb")

        py = [sys.executable, str(Path(__file__).resolve()), "--inventory", str(inventory)]
        aws_env = {**env, "AWS_ACCESS_KEY_ID": cluster.s3_access_key.resolve()
                   if cluster.s3_access_key else "",
                   "AWS_SECRET_ACCESS_KEY": cluster.s3_secret_key.resolve()
                   if cluster.s3_secret_key else "",
                   "AWS_DEFAULT_REGION": cluster.s3_region, "AWS_CONFIG_FILE": "/dev/null"}
        endpoint = ["--endpoint-url", str(cluster.s3_endpoint)] if cluster.s3_endpoint else []
        found: dict[str, list[Measured]] = {k: [] for k in ("up", "aws-up", "down", "aws-down")}
        for i in range(args.runs):
            ours_prefix = f"{run_prefix}ours/{CLUSTER}/2026010{i + 1}T000000Z/"
            theirs_prefix = f"s3://{bucket}/{run_prefix}aws-{i}/"
            jobs = {
                "up": [*py, "--child", "upload", "--prefix", ours_prefix, "--path",
                       str(work / "tsdb"), "--result", str(work / "up.json")],
                "aws-up": [aws, "s3", "cp", "--recursive", "--only-show-errors", *endpoint,
                           str(work / "tsdb"), theirs_prefix],
                "down": [*py, "--child", "restore", "--prefix", ours_prefix, "--path",
                         str(work / f"restored-{i}"), "--result", str(work / "down.json")],
                "aws-down": [aws, "s3", "cp", "--recursive", "--only-show-errors", *endpoint,
                             theirs_prefix, str(work / f"downloaded-{i}")],
            }
            # Interleaved, the order swapped every run: neither side always goes first.
            order = ["up", "aws-up", "down", "aws-down"] if i % 2 == 0 else \
                ["aws-up", "up", "aws-down", "down"]
            for key in order:
                measured = measure(jobs[key], env=aws_env if key.startswith("aws") else env)
                if measured.returncode:
                    print(f"{key} failed (rc {measured.returncode})", file=sys.stderr)
                    return 1
                found[key].append(measured)
            shutil.rmtree(work / f"restored-{i}", ignore_errors=True)
            shutil.rmtree(work / f"downloaded-{i}", ignore_errors=True)
        upload, plain, restore, download = (
            min(found[k], key=lambda m: m.seconds) if args.runs == 1 else
            sorted(found[k], key=lambda m: m.seconds)[len(found[k]) // 2]
            for k in ("up", "aws-up", "down", "aws-down"))
        upload = Measured(upload.seconds, max(m.peak_rss for m in found["up"]), 0)
        print("runs (interleaved; median shown): " + "; ".join(
            f"{k} " + ", ".join(f"{m.seconds:.1f}" for m in v) + " s"
            for k, v in found.items()))
        print(f"\nlab S3 {cluster.s3_endpoint}, bucket {bucket}; {os.cpu_count()} CPUs;"
              " wall time of each process (start-up included)")
        ours = _line("backup-tsdb upload (sha256, manifest)", size, upload)
        theirs = _line("aws s3 cp --recursive (upload)", size, plain)
        print(f"throughput ratio ours/awscli:          {ours / theirs:.2f}x  (target >= 1.0x)")
        print(f"peak RSS of our upload:                {upload.peak_rss / MIB:.1f} MiB"
              "  (target <= 300 MiB)")
        _line("restore-tsdb download (sha256 check)", size, restore)
        _line("aws s3 cp --recursive (download)", size, download)
        print(f"restore time / plain download time:    {restore.seconds / download.seconds:.2f}x")
        return 0
    finally:
        _purge(client, bucket, run_prefix)
        if args.keep:
            print(f"kept {work / 'tsdb'}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
