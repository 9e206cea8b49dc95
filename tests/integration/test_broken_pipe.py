"""The installed `watchkeeper` ends quietly when the reader of its output goes away
(`watchkeeper list --output json | head -3`), as Unix tools do: no traceback, exit 141 (what a
shell reports for a program killed by SIGPIPE) or 0."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

WATCHKEEPER = str(Path(sys.executable).parent / "watchkeeper")
QUIET_EXITS = (0, 141)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _assert_quiet(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


def test_list_json_stops_quietly_when_the_reader_closes_after_a_few_bytes() -> None:
    read_fd, write_fd = os.pipe()
    # The smallest pipe buffer (a page), so that the list (about 6 KB) cannot all be written
    # before the reader closes: the writer must meet the closed pipe, as under `| head -3`.
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen([WATCHKEEPER, "list", "--output", "json"], stdout=write_fd,
                               stderr=subprocess.PIPE, text=True, env=_env())
    os.close(write_fd)
    try:
        head = os.read(read_fd, 64)  # unbuffered: a few bytes, not what fits a read buffer
    finally:
        os.close(read_fd)
    _, stderr = process.communicate(timeout=60)
    assert head.startswith(b"["), head
    _assert_quiet(stderr)
    # 141, not 0: the writer really met the closed pipe (the list is larger than the buffer).
    assert process.returncode == 141, (process.returncode, stderr)


@pytest.mark.parametrize("args", [["list", "--output", "json"], ["list"],
                                  ["describe", "scale-receivers"], ["--help"]],
                         ids=["list-json", "list-text", "describe", "help"])
def test_every_command_ends_quietly_when_the_reader_is_gone_before_it_writes(
    args: list[str],
) -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        result = subprocess.run([WATCHKEEPER, *args], stdout=write_fd, stderr=subprocess.PIPE,
                                text=True, env=_env(), timeout=60)
    finally:
        os.close(write_fd)
    _assert_quiet(result.stderr)
    assert result.returncode in QUIET_EXITS, (result.returncode, result.stderr)
