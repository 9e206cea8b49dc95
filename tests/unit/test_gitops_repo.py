"""The GitOps repository as watchkeeper changes it (plugins/module_utils/gitops_repo.py), on
real git repositories: a run's commits are found by their trailer and reverted by one new
commit; a push after someone else's push rebases, a conflicting one pushes nothing; a revert
that conflicts with a later change pushes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ansible_collections.watchkeeper.platform.plugins.module_utils import gitops_repo


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def remote(tmp_path: Path) -> str:
    """A bare repository with branch main holding values.yaml and other.yaml."""
    bare, seed = tmp_path / "platform.git", tmp_path / "seed"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    (seed / "values.yaml").write_text("replicas: 1\n")
    (seed / "other.yaml").write_text("a: 1\n")
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return f"file://{bare}"


def head(url: str) -> str:
    return git(Path("/"), "ls-remote", url, "refs/heads/main").split()[0]


def change(url: str, tmp: Path, path: str, text: str) -> str:
    """Someone else's commit pushed to main."""
    work = tmp / f"other{len(list(tmp.glob('other*')))}"
    git(tmp, "clone", "-q", url, str(work))
    (work / path).write_text(text)
    git(work, "commit", "-q", "-am", f"edit {path}")
    git(work, "push", "-q", "origin", "HEAD:main")
    return head(url)


def test_a_runs_commits_are_found_by_trailer_and_reverted_once(remote: str) -> None:
    with gitops_repo.Clone(remote, "HEAD") as clone:
        assert clone.branch == "main"
        Path(clone.path("values.yaml")).write_text("replicas: 3\n")
        sha = clone.commit(["values.yaml"], "scale to 3", "run-1")
        assert clone.commit(["values.yaml"], "nothing", "run-1") is None  # no change: no commit
        clone.push()
    assert head(remote) == sha
    with gitops_repo.Clone(remote, "main") as clone:
        assert clone.run_commits("run-1") == [sha]
        assert clone.run_commits("run-1", "values.yaml") == [sha]
        assert clone.run_commits("run-1", "other.yaml") == []  # another Application's path
        assert clone.run_commits("run-2") == []
        revert = clone.revert([sha], "revert: run-1 failed", "run-1-rollback")
        clone.push()
        assert Path(clone.path("values.yaml")).read_text() == "replicas: 1\n"
        assert clone.reverted_commits() == [sha]
        assert clone.run_commits("run-1") == []  # a second rollback reverts nothing
        assert clone.show(revert)["subject"] == "revert: run-1 failed"
    assert head(remote) == revert


def test_a_push_after_someone_elses_rebases_onto_it(remote: str, tmp_path: Path) -> None:
    with gitops_repo.Clone(remote, "main") as clone:
        Path(clone.path("values.yaml")).write_text("replicas: 3\n")
        clone.commit(["values.yaml"], "scale to 3", "run-1")
        theirs = change(remote, tmp_path, "other.yaml", "a: 2\n")
        pushed = clone.push()
        assert git(Path(clone.dir), "rev-parse", "HEAD~1").strip() == theirs
    assert head(remote) == pushed


def test_a_conflicting_push_pushes_nothing(remote: str, tmp_path: Path) -> None:
    with gitops_repo.Clone(remote, "main") as clone:
        Path(clone.path("values.yaml")).write_text("replicas: 3\n")
        clone.commit(["values.yaml"], "scale to 3", "run-1")
        theirs = change(remote, tmp_path, "values.yaml", "replicas: 5\n")
        with pytest.raises(gitops_repo.GitFailure, match="moved while watchkeeper changed it"):
            clone.push()
    assert head(remote) == theirs  # never forced


def test_a_revert_that_conflicts_with_a_later_change_pushes_nothing(
        remote: str, tmp_path: Path) -> None:
    with gitops_repo.Clone(remote, "main") as clone:
        Path(clone.path("values.yaml")).write_text("replicas: 3\n")
        sha = clone.commit(["values.yaml"], "scale to 3", "run-1")
        clone.push()
    later = change(remote, tmp_path, "values.yaml", "replicas: 7\n")
    with gitops_repo.Clone(remote, "main") as clone:
        with pytest.raises(gitops_repo.GitFailure, match="a later commit changed the same lines"):
            clone.revert([sha], "revert", "")
        assert not clone.dirty()
    assert head(remote) == later
