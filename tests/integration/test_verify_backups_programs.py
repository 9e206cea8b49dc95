"""verify-backups when the program a declared kind needs is absent, skipped by name, or named by
the inventory (wk_thanos_binary) and overridden with -e: through the CLI in check mode, against
a real MinIO (the lab's build) holding one complete block copy, with the real thanos build.

Check mode plans (reads the backup bucket, decides what it would restore and with which
program) and starts nothing, so no Thanos has to serve the block copy here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watchkeeper_lab import build

from tests.conftest import cli, free_port, wait_ready

ACCESS, SECRET = "wk-test-access", "wk-test-secret-" + os.urandom(4).hex()
BLOCKS, BACKUPS = "blocks", "backups"
ULID = "01JABCDEFGHJKMNPQRSTVWXYZ0"


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MinIO with the blocks bucket and a backup bucket holding one complete block copy
    (meta.json, index, chunks/) under thanos-blocks/."""
    import boto3

    root = tmp_path_factory.mktemp("minio")
    port = free_port()
    binary = build.ensure(build.load_specs()["minio"], print)
    env = {**os.environ, "MINIO_ROOT_USER": ACCESS, "MINIO_ROOT_PASSWORD": SECRET,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"}
    with (root / "minio.log").open("ab") as log:
        process = subprocess.Popen([str(binary), "server", str(root / "data"), "--address",
                                    f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/minio/health/live")
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, region_name="us-east-1")
        for bucket in (BLOCKS, BACKUPS):
            s3.create_bucket(Bucket=bucket)
        meta = {"ulid": ULID, "minTime": 1_700_000_000_000, "maxTime": 1_700_007_200_000,
                "version": 1, "thanos": {"labels": {"cluster": "obs"}}}
        for name, body in (("index", b"index"), ("chunks/000001", b"chunks"),
                           ("meta.json", json.dumps(meta).encode())):
            s3.put_object(Bucket=BACKUPS, Key=f"thanos-blocks/{ULID}/{name}", Body=body)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def thanos() -> str:
    return str(build.ensure(build.load_specs()["thanos"], print))


def _inventory(tmp_path: Path, s3_url: str, **extra: str) -> Path:
    """One observability cluster that declares only the bucket kind."""
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  vars:\n    ansible_connection: local\n  hosts:\n    obs: {}\n")
    lines = [
        "wk_role: observability",
        "wk_receive_http_urls: [http://127.0.0.1:9]",
        f"wk_s3_endpoint: {s3_url}",
        f"wk_s3_bucket_blocks: {BLOCKS}",
        f"wk_s3_bucket_backups: {BACKUPS}",
        "wk_s3_access_key: {env: WK_TEST_S3_ACCESS}",
        "wk_s3_secret_key: {env: WK_TEST_S3_SECRET}",
        *(f"wk_{key}: {value}" for key, value in extra.items()),
    ]
    (inventory / "host_vars" / "obs.yml").write_text("\n".join(lines) + "\n")
    return inventory


def _path_without_thanos() -> str:
    """PATH for the run: this interpreter's bin and the system's, less any directory with a
    thanos in it (the test is about a machine without one)."""
    dirs = [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
    return os.pathsep.join(d for d in dirs if not os.access(os.path.join(d, "thanos"), os.X_OK))


def _verify(tmp_path: Path, inventory: Path, state_env: dict[str, str], *extra: str,
            run: str = "run") -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = cli("run", "verify-backups", "-i", str(inventory), "--check", "--run-dir",
                 str(tmp_path / run), "-e", f"scratch_dir={tmp_path / 'scratch'}", *extra,
                 env={**state_env, "PATH": _path_without_thanos(),
                      "WK_TEST_S3_ACCESS": ACCESS, "WK_TEST_S3_SECRET": SECRET,
                      "WATCHKEEPER_TEXTFILE_DIR": str(tmp_path / "textfiles")})
    journal_path = tmp_path / run / "journal.json"
    journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
    return result, journal


def _checks(journal: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for s in journal["steps"] for c in s["checks"]}


def test_a_declared_kind_without_its_program_fails_naming_what_is_missing(
        minio: str, tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _verify(tmp_path, _inventory(tmp_path, minio), state_env)
    assert result.returncode == 1, (result.stdout, result.stderr)
    bucket = _checks(journal)["bucket backup"]
    assert bucket["status"] == "fail", bucket
    assert "cannot be verified: no thanos program" in bucket["evidence"], bucket
    assert "wk_thanos_binary" in bucket["hint"] and "-e skip=bucket" in bucket["hint"], bucket
    assert "bucket backup" in journal["message"], journal["message"]
    # The undeclared kinds are still only skipped.
    assert _checks(journal)["tsdb backup"]["status"] == "skipped"


def test_a_declared_kind_skipped_by_name_passes_and_says_so(
        minio: str, tmp_path: Path, state_env: dict[str, str]) -> None:
    result, journal = _verify(tmp_path, _inventory(tmp_path, minio), state_env,
                              "-e", "skip=bucket")
    assert result.returncode == 0, (result.stdout, result.stderr)
    bucket = _checks(journal)["bucket backup"]
    assert bucket["status"] == "skipped"
    assert "skipped by name (-e skip=bucket)" in bucket["evidence"], bucket


def test_the_inventory_names_the_program_and_e_overrides_it(
        minio: str, thanos: str, tmp_path: Path, state_env: dict[str, str]) -> None:
    inventory = _inventory(tmp_path, minio, thanos_binary=thanos)
    result, journal = _verify(tmp_path, inventory, state_env, run="from-inventory")
    assert result.returncode == 0, (result.stdout, result.stderr)
    bucket = _checks(journal)["bucket backup"]
    assert bucket["status"] == "skipped" and bucket["evidence"].startswith("check mode:")
    assert f"thanos store + query ({thanos})" in bucket["evidence"], bucket

    other = tmp_path / "bin" / "thanos-other"
    other.parent.mkdir()
    other.symlink_to(thanos)
    result, journal = _verify(tmp_path, inventory, state_env, "-e", f"thanos_binary={other}",
                              run="override")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert f"thanos store + query ({other})" in _checks(journal)["bucket backup"]["evidence"]


def test_an_inventory_program_that_is_not_executable_stops_the_run(
        minio: str, tmp_path: Path, state_env: dict[str, str]) -> None:
    missing = tmp_path / "no" / "thanos"
    result, journal = _verify(tmp_path, _inventory(tmp_path, minio, thanos_binary=str(missing)),
                              state_env)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert f"obs: wk_thanos_binary {missing}: not an executable program" in result.stderr
    assert not any(s["phase"] == "playbook" for s in journal["steps"])
