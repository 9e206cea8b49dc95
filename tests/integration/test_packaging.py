"""`pip install .` gives a `watchkeeper` that works from any directory: the wheel carries the
playbooks, plugins and report templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_wheel_carries_collection_and_runs_from_anywhere(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(REPO)], check=True)
    wheel = next((tmp_path / "dist").glob("watchkeeper-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("runbooks/_collection/galaxy.yml",
                     "runbooks/_collection/playbooks/status.yml",
                     "runbooks/_collection/plugins/modules/remote_write_sample.py",
                     "runbooks/_collection/plugins/action/remote_write_evaluate.py",
                     "runbooks/templates/report.md.j2",
                     "runbooks/templates/report.html.j2"):
        assert expected in names, expected

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target),
           "WATCHKEEPER_STATE_DIR": str(tmp_path / "state")}
    inventory = REPO / "tests" / "fixtures" / "inventory"
    result = subprocess.run(
        [sys.executable, "-c",
         "import sys, runbooks.cli; print(runbooks.cli.__file__, file=sys.stderr);"
         " sys.exit(runbooks.cli.main(sys.argv[1:]))",
         "run", "ping", "-i", str(inventory), "--run-dir", str(tmp_path / "run"),
         "--output", "json"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(target) in result.stderr  # the installed copy ran, not the checkout
    assert json.loads(result.stdout)["clusters"] == {"cluster-a": "ok", "cluster-b": "ok"}


def test_the_lab_is_not_in_the_product_wheel_and_the_cli_says_how_to_get_it(
        tmp_path: Path) -> None:
    """The product wheel holds no lab; `watchkeeper lab` without the lab package installed
    names what is missing and how to install it (exit 2, no traceback)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(REPO)], check=True)
    wheel = next((tmp_path / "dist").glob("watchkeeper-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "watchkeeper_lab" in n or n.startswith("runbooks/lab/")]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy, from elsewhere, as on a machine where only the product is installed
    # (this environment has the lab: `None` in sys.modules makes its import fail as absent).
    code = (f"import sys; sys.path.insert(0, {str(target)!r}); sys.modules['watchkeeper_lab']"
            " = None; import runbooks.cli; sys.exit(runbooks.cli.main(['lab', 'status']))")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=elsewhere,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "WATCHKEEPER_STATE_DIR": str(tmp_path / "s")})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the lab is not installed" in result.stderr and "pip install ./lab" in result.stderr
    assert "Traceback" not in result.stderr
