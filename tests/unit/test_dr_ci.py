"""deploy/ci: the nightly DR drill pipelines users copy. The GitHub Actions workflow goes through
actionlint (built from the Go module proxy into the lab's cache; a mutated copy proves it
bites); both pipelines publish what a drill leaves where the drill writes it, run one drill at
a time, and fail the job on a failed drill (the command's own exit code, no `|| true`).

No lab needed: these read files and run actionlint (from the lab's build cache).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import build

from tests.conftest import REPO

CI = REPO / "deploy" / "ci"
GITHUB = CI / "github-dr-drill.yml"
GITLAB = CI / "gitlab-dr-drill.yml"
LEFT = ("report.html", "report.md", "junit.xml", "drill.json", "journal.json")


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return build.ensure(build.load_specs()["actionlint"], lambda line: print(line, flush=True))


def lint(actionlint: Path, workflow: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(actionlint), "-no-color", str(workflow)], capture_output=True,
                          text=True, timeout=120)


def test_the_github_workflow_passes_actionlint(actionlint: Path, tmp_path: Path) -> None:
    checked = lint(actionlint, GITHUB)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The linter reads the workflow for real: a reference to an input that does not exist fails.
    broken = tmp_path / GITHUB.name
    broken.write_text(GITHUB.read_text().replace("inputs.scenario ||", "inputs.scenarios ||"))
    failed = lint(actionlint, broken)
    assert failed.returncode != 0 and "scenarios" in failed.stdout, failed.stdout


def drill_command(script: str) -> str:
    command = " ".join(script.split())
    assert re.search(r"watchkeeper run dr-drill -i \S+ -e \"scenario=\$\w+\"", command), command
    assert "|| true" not in command and "set +e" not in command  # a failed drill fails the job
    return command


def test_the_github_workflow_publishes_what_a_drill_leaves_and_runs_one_at_a_time() -> None:
    workflow: dict[Any, Any] = yaml.safe_load(GITHUB.read_text())
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert "schedule" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["drill"]["steps"]
    drill = next(s for s in steps if s.get("name") == "Drill")
    command = drill_command(drill["run"])
    run_dir = re.search(r"--run-dir \"([^\"]+)\"", command).group(1)  # type: ignore[union-attr]
    published = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert published["if"] == "always()"
    paths = published["with"]["path"]
    expected_dir = run_dir.replace("$RUNNER_TEMP", "${{ runner.temp }}")
    for name in LEFT:
        assert f"{expected_dir}/{name}" in paths, name


def test_the_gitlab_job_publishes_junit_and_drill_json_and_runs_one_at_a_time() -> None:
    job = yaml.safe_load(GITLAB.read_text())["dr-drill"]
    assert job["resource_group"]
    assert any("schedule" in rule["if"] for rule in job["rules"])
    command = drill_command(" ".join(job["script"]))
    run_dir = re.search(r"--run-dir \"([^\"]+)\"", command).group(1)  # type: ignore[union-attr]
    relative = run_dir.replace("$CI_PROJECT_DIR/", "")
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == f"{relative}/junit.xml"
    for name in LEFT:
        if name != "junit.xml":
            assert f"{relative}/{name}" in job["artifacts"]["paths"], name
