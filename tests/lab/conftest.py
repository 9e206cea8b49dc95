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
from watchkeeper_lab import Lab, build

from tests.lab.helpers import set_platform_auto_sync


def _up(lab: Lab) -> None:
    """Up, with ArgoCD syncing the platform: on a machine whose cache lacks the background
    builds (ArgoCD, the second versions), the first `up` starts them; wait for them, then
    `up` again hands the platform to ArgoCD, so every test runs as the platform does."""
    progress = lambda line: print(f"lab: {line}", flush=True)  # noqa: E731
    lab.up(progress=progress)
    if not lab.argocd_running():
        build.ensure_all(progress, build.background_names())
        lab.up(progress=progress)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reuse = os.environ.get("WATCHKEEPER_TEST_LAB_DIR")
    if reuse:  # development: a lab you keep running (`watchkeeper lab up --lab-dir ...`)
        kept = Lab(Path(reuse))
        _up(kept)
        os.environ.update(kept.env())
        yield kept
        if kept.argocd_running():  # as `lab up` leaves it
            set_platform_auto_sync(kept, True)
        return
    # /var/tmp, not pytest's 0700 tmp: OpenSearch runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="wk-lab-test-", dir="/var/tmp"))
    root.chmod(0o755)
    instance = Lab(root / "lab")
    try:
        _up(instance)
        os.environ.update(instance.env())
        yield instance
    finally:
        instance.down(purge=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _platform_sync_policy(request: pytest.FixtureRequest, lab: Lab) -> None:
    """ArgoCD's automated sync of the platform is paused during the tests, except in those
    marked `auto_sync` (the GitOps-mode runbooks, which commit and wait for ArgoCD to apply).

    Why: with automated sync (even without self-heal) ArgoCD re-syncs an Application that is
    OutOfSync whenever git's revision differs from its last sync's, so the first hand-made
    change after any commit (a test's injected fault, a direct-mode scale) would be undone
    under the test, depending on which tests committed before it. An imperative emergency
    action on a real platform meets the same thing and pauses auto-sync the same way. The
    runbooks' ArgoCD re-sync (an `operation`) works either way."""
    if lab.argocd_running():
        set_platform_auto_sync(lab, request.node.get_closest_marker("auto_sync") is not None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked lab_teardown (the one that takes the lab down) run after every other.

    A lab test that fails runs once more (pytest-rerunfailures): the lab is real programs on a
    shared 2-core machine, and one slow moment must not sink a CI run of forty minutes. The
    summary lists every rerun (RERUN), so a test that needed one is seen and fixed; a test
    that fails twice fails the run."""
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)
    for item in items:
        if item.get_closest_marker("lab") is not None and \
                item.get_closest_marker("lab_teardown") is None:
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=5))


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
