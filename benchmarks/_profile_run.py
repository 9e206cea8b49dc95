"""One `watchkeeper run` with its phases timed, for benchmarks/engine_overhead.py.

    python benchmarks/_profile_run.py MARKS.json PROFILE.out|- run ping -i INVENTORY ...

Runs the CLI's main() in this process, as the `watchkeeper` script does, and records wall-clock
marks (time.time(), so the parent can add the process's start and end): the imports, the start
of ansible-runner, the spawn and close of the ansible-playbook child, the reports, the return of
main(). With PROFILE.out (not `-`) the run is also profiled with cProfile (which slows its
Python parts: time the phases without it). The hooks wrap functions without changing what they
do.
"""

from __future__ import annotations

import cProfile
import json
import sys
import time

MARKS: list[tuple[str, float]] = [("interpreter up", time.time())]


def mark(name: str) -> None:
    MARKS.append((name, time.time()))


def main() -> int:
    marks_path, profile_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    profile = cProfile.Profile() if profile_path != "-" else None
    if profile is not None:
        profile.enable()
    import runbooks.cli as cli

    mark("imported runbooks.cli")
    import ansible_runner
    from pexpect import pty_spawn

    from runbooks import report

    spawn_init, spawn_close = pty_spawn.spawn.__init__, pty_spawn.spawn.close
    runner_run, write_reports = ansible_runner.run, report.write_reports

    def init(self: object, *args: object, **kwargs: object) -> None:
        mark("ansible-playbook spawned")
        spawn_init(self, *args, **kwargs)  # type: ignore[arg-type]

    def close(self: object, *args: object, **kwargs: object) -> None:
        mark("ansible-playbook exited (close)")
        spawn_close(self, *args, **kwargs)  # type: ignore[arg-type]
        mark("closed")

    def run(*args: object, **kwargs: object) -> object:
        mark("ansible_runner.run called")
        try:
            return runner_run(*args, **kwargs)
        finally:
            mark("ansible_runner.run returned")

    def reports(*args: object) -> None:
        mark("reports start")
        write_reports(*args)  # type: ignore[arg-type]
        mark("reports written")

    pty_spawn.spawn.__init__ = init  # type: ignore[method-assign]
    pty_spawn.spawn.close = close  # type: ignore[method-assign]
    ansible_runner.run = run  # type: ignore[assignment]
    report.write_reports = reports
    mark("hooks set")
    try:
        return cli.main(argv)
    finally:
        mark("main returned")
        if profile is not None:
            profile.disable()
            profile.dump_stats(profile_path)
        with open(marks_path, "w") as handle:
            json.dump(MARKS, handle)
        mark("profile written")


if __name__ == "__main__":
    sys.exit(main())
