"""The real lab, brought up once per test session in a lab directory of its own (binaries come
from the shared cache, built on first use)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchkeeper_lab import Lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reuse = os.environ.get("WATCHKEEPER_TEST_LAB_DIR")
    if reuse:  # development: a lab you keep running (`watchkeeper lab up --lab-dir ...`)
        kept = Lab(Path(reuse))
        kept.up(progress=lambda line: print(f"lab: {line}", flush=True))
        os.environ.update(kept.env())
        yield kept
        return
    # /var/tmp, not pytest's 0700 tmp: OpenSearch runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="wk-lab-test-", dir="/var/tmp"))
    root.chmod(0o755)
    instance = Lab(root / "lab")
    try:
        instance.up(progress=lambda line: print(f"lab: {line}", flush=True))
        os.environ.update(instance.env())
        yield instance
    finally:
        instance.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked lab_teardown (the one that takes the lab down) run after every other."""
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted after the test."""
    with tmpfs(tmp_path / "volume", "4m") as mount:
        yield mount


@pytest.fixture
def volume_16m(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (room for a copy of a lab agent's WAL), unmounted after the test."""
    with tmpfs(tmp_path / "volume16", "16m") as mount:
        yield mount


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)
