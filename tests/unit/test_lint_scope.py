"""ruff covers the collection's plugins too: pyproject.toml excludes nothing of plugins/,
scripts/test.sh lints it, and it is clean (Ansible's idioms are per-file ignores)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_does_not_exclude_plugins() -> None:
    ruff = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]
    assert "plugins" not in ruff.get("extend-exclude", []) + ruff.get("exclude", [])


def test_test_script_lints_plugins() -> None:
    lines = [line for line in (REPO / "scripts" / "test.sh").read_text().splitlines()
             if "ruff check" in line]
    assert lines and all("plugins" in line.split("ruff check", 1)[1] for line in lines)


def test_plugins_are_ruff_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    binary = str(ruff) if ruff.exists() else shutil.which("ruff")
    if binary is None:
        pytest.skip("ruff is not installed")
    done = subprocess.run([binary, "check", "plugins"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
