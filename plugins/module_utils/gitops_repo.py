# Copyright: watchkeeper maintainers; Apache-2.0
"""The GitOps repository as watchkeeper changes it: a working clone of the tracked branch,
commits pushed to it (each marked with the watchkeeper run that made it), reverts, history.

Every change watchkeeper makes to a platform goes through here when the platform is synced by
ArgoCD: a change made to the live objects instead would be reverted by self-heal, and would
not be in the change history.

A commit made by a run carries a trailer `Watchkeeper-Run: <run id>`; the run's rollback finds
its commits by it and reverts them (a new commit), so the history shows both.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import shutil
import subprocess
import tempfile

from ansible_collections.watchkeeper.platform.plugins.module_utils.failure import ModuleFailure

RUN_TRAILER = "Watchkeeper-Run"
AUTHOR = ["-c", "user.name=watchkeeper", "-c", "user.email=watchkeeper@localhost"]


class GitFailure(ModuleFailure):
    """A git operation that failed."""


def run_git(args, cwd, hint="check wk_git_url and that watchkeeper may push to it"):
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
    if proc.returncode != 0:
        raise GitFailure("git %s failed: %s" % (" ".join(args), proc.stderr.strip()), hint)
    return proc.stdout


def message_with_run(message, run_id):
    """The commit message with the run's trailer (none without a run id)."""
    message = message.rstrip()
    return "%s\n\n%s: %s\n" % (message, RUN_TRAILER, run_id) if run_id else message + "\n"


class Clone(object):
    """A working clone of `branch` ('' or 'HEAD': the repository's default branch) in a
    temporary directory, removed on exit. Full history: reverts and the log need it."""

    def __init__(self, url, branch=""):
        self.url = url
        self.branch = "" if branch in ("", "HEAD") else branch
        self.dir = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="wk-gitops-")
        args = ["clone", "-q", "--no-tags"]
        if self.branch:
            args += ["--branch", self.branch]
        run_git([*args, self.url, self.dir], "/")
        if not self.branch:
            self.branch = self.git("rev-parse", "--abbrev-ref", "HEAD").strip()
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def git(self, *args):
        return run_git(list(args), self.dir)

    def path(self, relative):
        return os.path.join(self.dir, relative)

    def head(self):
        return self.git("rev-parse", "HEAD").strip()

    def dirty(self):
        return bool(self.git("status", "--porcelain").strip())

    def commit(self, paths, message, run_id=""):
        """Commit `paths` (relative); return the new commit, or None when nothing changed."""
        self.git("add", "--", *paths)
        if not self.git("status", "--porcelain", "--", *paths).strip():
            return None
        self.git(*AUTHOR, "commit", "-q", "-m", message_with_run(message, run_id))
        return self.head()

    def push(self):
        """Push to the tracked branch; when someone pushed first, rebase once onto theirs
        (a conflicting change of the same file fails: never a forced push)."""
        try:
            self.git("push", "-q", "origin", "HEAD:" + self.branch)
        except GitFailure:
            self.git("fetch", "-q", "origin", self.branch)
            try:
                self.git("rebase", "-q", "FETCH_HEAD")
            except GitFailure as exc:
                raise GitFailure(
                    "the branch %s moved while watchkeeper changed it, and the changes"
                    " conflict: %s" % (self.branch, exc.message),
                    "run again on the new head; nothing was pushed") from exc
            self.git("push", "-q", "origin", "HEAD:" + self.branch)
        return self.head()

    def run_commits(self, run_id, path="", since=""):
        """The commits on the branch made by the run `run_id` (touching `path` when given:
        one Application's share of a run over several clusters), newest first (after `since`
        when given), that no later commit reverted yet."""
        span = ["%s..HEAD" % since] if since else ["HEAD"]
        out = self.git("log", "--format=%H", "--grep", "^%s: %s$" % (RUN_TRAILER, run_id),
                       *span, *(["--", path] if path else []))
        shas = [line for line in out.split() if line]
        reverted = set(self.reverted_commits(since))
        return [sha for sha in shas if sha not in reverted]

    def reverted_commits(self, since=""):
        """The commits that a later `git revert` commit on the branch reverted."""
        span = ["%s..HEAD" % since] if since else ["HEAD"]
        out = self.git("log", "--format=%B", "--grep", "This reverts commit", *span)
        found = []
        for line in out.splitlines():
            if line.startswith("This reverts commit "):
                found.append(line.split()[3].rstrip("."))
        return found

    def revert(self, shas, message, run_id=""):
        """One commit that reverts `shas` (newest first); return it. A revert that conflicts
        with later changes fails and pushes nothing."""
        try:
            self.git("revert", "--no-commit", *shas)
        except GitFailure as exc:
            self.git("revert", "--abort")
            raise GitFailure("cannot revert %s: a later commit changed the same lines (%s)" % (
                ", ".join(s[:12] for s in shas), exc.message),
                "revert by hand and open a change for review") from exc
        lines = [message.rstrip(), ""] + ["This reverts commit %s." % sha for sha in shas]
        self.git(*AUTHOR, "commit", "-q", "-m", message_with_run("\n".join(lines), run_id))
        return self.head()

    def show(self, sha):
        """{sha, subject, author, date} of one commit."""
        out = self.git("show", "-s", "--format=%H%x00%s%x00%an%x00%cI", sha)
        full, subject, author, date = out.strip().split("\x00")
        return {"sha": full, "subject": subject, "author": author, "date": date}

    def log(self, path="", limit=20):
        """The newest `limit` commits that touched `path` (all when ''): sha, subject,
        author, date."""
        args = ["log", "-n", str(int(limit)), "--format=%H%x00%s%x00%an%x00%cI", "HEAD"]
        if path:
            args += ["--", path]
        commits = []
        for line in self.git(*args).splitlines():
            if line.strip():
                sha, subject, author, date = line.split("\x00")
                commits.append({"sha": sha, "subject": subject, "author": author, "date": date})
        return commits
