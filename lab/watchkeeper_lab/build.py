"""Where the lab's programs come from: pinned in versions.toml, built or fetched from package
registries once, cached by name and version.

Go programs whose go.mod has replace directives (Thanos, etcd) cannot be `go install`ed; they
are built as dependencies of a small wrapper module of ours that copies the program's replace
list. ArgoCD, whose go.mod replaces a module with a directory its module zip leaves out, is
built in a copy of its module under the cache's build directory (never in the repository).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from watchkeeper_lab.errors import LabError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True)
class Spec:
    """One program of the lab, as pinned in versions.toml."""

    name: str
    source: str
    version: str
    options: dict[str, Any]

    @property
    def program(self) -> str:
        """The program this is a version of (several entries may build one program)."""
        return str(self.options.get("program", self.name))

    @property
    def binary_name(self) -> str:
        return str(self.options.get("binary", self.program))

    @property
    def image(self) -> str | None:
        """`repository:tag` of the container image that runs this build, if pods run it."""
        repository = self.options.get("image")
        if not repository:
            return None
        return f"{repository}:{self.options.get('tag', self.version)}"

    @property
    def background(self) -> bool:
        """Not needed to bring the lab up: built once the lab is up."""
        return bool(self.options.get("background", False))


def load_specs() -> dict[str, Spec]:
    text = resources.files("watchkeeper_lab").joinpath("versions.toml").read_text()
    data = tomllib.loads(text)
    return {
        name: Spec(name, str(v["source"]), str(v.get("version", "system")), dict(v))
        for name, v in data.items()
    }


def cache_root() -> Path:
    """$WATCHKEEPER_CACHE, else /var/cache/watchkeeper for root (OpenSearch runs as an
    unprivileged user and must read its distribution; /root is not traversable), else
    ~/.cache/watchkeeper."""
    if os.environ.get("WATCHKEEPER_CACHE"):
        return Path(os.environ["WATCHKEEPER_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/watchkeeper")
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "watchkeeper"


def _run(cmd: list[str], cwd: Path, logfile: Path, env: dict[str, str] | None = None) -> str:
    """Run a build command, appending to the build log; raise LabError with its tail."""
    with logfile.open("a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=handle, text=True,
                              env={**os.environ, **(env or {})})
        handle.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(logfile.read_text().splitlines()[-15:])
        raise LabError(f"`{' '.join(cmd[:3])} ...` failed (exit {proc.returncode});"
                       f" full log {logfile}:\n{tail}")
    return proc.stdout


def _go_env(spec: Spec, build_dir: Path) -> dict[str, str]:
    # A pinned toolchain (from the module proxy, like any module) where the program needs a
    # newer Go than the machine's; otherwise the machine's own.
    toolchain = str(spec.options.get("toolchain") or os.environ.get("GOTOOLCHAIN", "local"))
    return {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off",
            "GOTOOLCHAIN": toolchain, "GOBIN": str(build_dir / "gobin")}


def _ldflags(spec: Spec) -> str:
    """`-s -w` and the spec's own; `{v}` is the version without its `v`, `{V}` with it."""
    own = str(spec.options.get("ldflags", "")).format(v=spec.version.lstrip("v"), V=spec.version)
    return f"-s -w {own}".strip()


def _wrapper_module(spec: Spec, workdir: Path, logfile: Path, env: dict[str, str]) -> Any:
    """Create our wrapper module (once) and return the program's own go.mod, parsed."""
    module = spec.options["module"]
    if not (workdir / "go.mod").exists():
        _run(["go", "mod", "init", f"local/watchkeeper-lab-{spec.name}"], workdir, logfile, env)
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{spec.version}"],
                           workdir, logfile, env))
    if info.get("Error"):
        raise LabError(f"{module}@{spec.version}: {info['Error']} (log {logfile})")
    return json.loads(_run(["go", "mod", "edit", "-json", info["GoMod"]], workdir, logfile, env))


def _build_go_wrapper(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    """A wrapper module requiring the program, with the program's own replace directives."""
    package = spec.options["package"]
    env = _go_env(spec, workdir)
    upstream = _wrapper_module(spec, workdir, logfile, env)
    for replace in upstream.get("Replace") or []:
        old, new = replace["Old"], replace["New"]
        if not new.get("Version"):
            continue  # a local path: meaningful only inside the upstream tree
        lhs = old["Path"] + (f"@{old['Version']}" if old.get("Version") else "")
        _run(["go", "mod", "edit", f"-replace={lhs}={new['Path']}@{new['Version']}"],
             workdir, logfile, env)
    for extra in spec.options.get("replace", []):  # ours, where upstream's no longer resolves
        _run(["go", "mod", "edit", f"-replace={extra}"], workdir, logfile, env)
    _run(["go", "get", "-tool", f"{package}@{spec.version}"], workdir, logfile, env)
    ldflags = _ldflags(spec)
    tags = str(spec.options.get("tags", "netgo"))
    _run(["go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o",
          str(dest), package], workdir, logfile, env)


def _build_go_k8s_group(specs: list[Spec], dests: list[Path], workdir: Path,
                        logfile: Path) -> None:
    """Kubernetes requires its staging modules at v0.0.0 (replaced by local paths in its own
    tree); a wrapper maps each to the published v0.N.M that matches v1.N.M. Every program of
    one Kubernetes version is built by one `go build` over one module download (the shared
    packages compile once and the two cores stay busy)."""
    first = specs[0]
    staging = first.options["staging"]
    env = _go_env(first, workdir)
    upstream = _wrapper_module(first, workdir, logfile, env)
    for require in upstream.get("Require") or []:
        if require["Path"].startswith("k8s.io/") and require["Version"] == "v0.0.0":
            _run(["go", "mod", "edit", f"-replace={require['Path']}={require['Path']}@{staging}"],
                 workdir, logfile, env)
    packages = [spec.options["package"] for spec in specs]
    _run(["go", "get", "-tool", *[f"{p}@{first.version}" for p in packages]], workdir, logfile,
         env)
    minor = first.version.split(".")[1]
    # As hack/lib/version.sh: tools that parse `--version` (and Helm's kubeVersion) need them.
    ldflags = ["-s", "-w"]
    for prefix in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [f"-X {prefix}.gitVersion={first.version}", f"-X {prefix}.gitMajor=1",
                    f"-X {prefix}.gitMinor={minor}", f"-X {prefix}.gitTreeState=clean"]
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    _run(["go", "build", "-trimpath", "-ldflags", " ".join(ldflags), "-o", f"{out}/",
          *packages], workdir, logfile, env)
    for package, dest in zip(packages, dests, strict=True):
        shutil.move(str(out / Path(package).name), dest)


def _build_go_install(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    env = _go_env(spec, workdir)
    package = spec.options["package"]
    _run(["go", "install", "-trimpath", "-tags", str(spec.options.get("tags", "netgo")),
          "-ldflags", _ldflags(spec), f"{package}@{spec.version}"], workdir, logfile, env)
    name = Path(package).name
    if name.startswith("v") and name[1:].isdigit():  # a major-version suffix: .../kustomize/v5
        name = Path(package).parent.name
    shutil.move(str(workdir / "gobin" / name), dest)


def _module_dir(module: str, version: str, workdir: Path, logfile: Path,
                env: dict[str, str]) -> Path:
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{version}"], workdir,
                           logfile, env))
    if info.get("Error"):
        raise LabError(f"{module}@{version}: {info['Error']} (log {logfile})")
    return Path(info["Dir"])


def _build_go_module_copy(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    """Build inside a writable copy of the module (for a go.mod that replaces modules with
    directories of its own repository): `copy_in` puts those modules where go.mod expects
    them, `stubs` writes files the build embeds but the module leaves out. `dest` is a
    directory: bin/<binary> and the module files named in `keep`."""
    env = _go_env(spec, workdir)
    source = workdir / "src"
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(_module_dir(spec.options["module"], spec.version, workdir, logfile, env),
                    source)
    for relative, module in spec.options.get("copy_in", {}).items():
        shutil.copytree(_module_dir(module, spec.version, workdir, logfile, env),
                        source / relative)
    for path in [source, *source.rglob("*")]:  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    for relative, text in spec.options.get("stubs", {}).items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_text(text)
    _run(["go", "mod", "download"], source, logfile, env)
    (dest / "bin").mkdir(parents=True)
    _run(["go", "build", "-trimpath", "-tags", str(spec.options.get("tags", "netgo")),
          "-ldflags", _ldflags(spec), "-o", str(dest / "bin" / spec.binary_name),
          spec.options["package"]], source, logfile, env)
    for relative in spec.options.get("keep", []):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if (source / relative).is_dir():
            shutil.copytree(source / relative, target)
        else:
            shutil.copy2(source / relative, target)
            if target.suffix == ".sh":  # module files carry no mode bits
                target.chmod(0o755)
    shutil.rmtree(source)  # gigabytes of Go sources are not kept


def _fetch_maven(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    artifact = str(spec.options["artifact"]).format(v=spec.version)
    _run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
          f"-DoutputDirectory={workdir}"], workdir, logfile)
    archive = next(workdir.glob("*.zip"))
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(workdir / "unpacked")
    home = next((workdir / "unpacked").iterdir())
    # zipfile drops the executable bits.
    for path in (home / "bin").iterdir():
        path.chmod(0o755)
    shutil.move(str(home), dest)


_BUILDERS = {"go-wrapper": _build_go_wrapper, "go-install": _build_go_install,
             "go-module-copy": _build_go_module_copy, "maven": _fetch_maven}


def _override(spec: Spec) -> Path | None:
    variable = "WATCHKEEPER_LAB_" + spec.name.upper().replace("-", "_")
    explicit = os.environ.get(variable)
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise LabError(f"{variable}={explicit} does not exist")
        return path
    # PATH holds one version of a program: it stands in for the main entry only.
    if os.environ.get("WATCHKEEPER_LAB_USE_PATH") == "1" and spec.program == spec.name:
        found = shutil.which(spec.binary_name)
        if found:
            return Path(found)
    return None


#: Cold build seconds on 2 cores (measured), for the share of the total a build line shows.
ESTIMATE_SECONDS = {"thanos": 300, "thanos-previous": 300, "minio": 200, "etcd": 80,
                    "kwok": 180, "opensearch": 15, "k8s": 600, "prometheus-v3": 300,
                    "helm": 150, "kustomize": 80, "argocd": 700, "actionlint": 60}


def _dest(spec: Spec) -> Path:
    directory = cache_root() / "bin" / spec.program / spec.version
    home = spec.source == "maven" or spec.options.get("layout") == "home"
    return directory / ("home" if home else spec.binary_name)


def _cached(spec: Spec) -> Path | None:
    """The program's path when no build is needed (override, Debian, in the cache)."""
    override = _override(spec)
    if override is not None:
        return override
    if spec.source == "debian":
        binary = Path(spec.options["binary"])
        if not binary.exists():
            raise LabError(f"{binary} is missing: apt-get install {spec.options['deb']}"
                           " (scripts/setup.sh does it)")
        return binary
    dest = _dest(spec)
    return dest if dest.exists() else None


@contextlib.contextmanager
def _build_lock(name: str) -> Iterator[None]:
    """One build of a program at a time on this machine (two labs, or tests, starting at
    once): the second waits, then finds the first's result in the cache."""
    path = cache_root() / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(specs: list[Spec], progress: Progress) -> None:
    """Build `specs` (one program, or the Kubernetes programs of one version together) into
    the cache, under the lock; each binary gets its final name only once complete."""
    kubernetes = specs[0].source == "go-k8s"
    label = f"kubernetes-{specs[0].version}" if kubernetes else specs[0].name
    with _build_lock(label):
        todo = [s for s in specs if not _dest(s).exists()]
        if not todo:
            return
        workdir = cache_root() / "build" / (label if kubernetes else
                                             f"{label}-{specs[0].version}")
        workdir.mkdir(parents=True, exist_ok=True)
        logfile = cache_root() / "logs" / (f"build-{label}.log" if kubernetes else
                                           f"build-{label}-{specs[0].version}.log")
        logfile.parent.mkdir(parents=True, exist_ok=True)
        names = ", ".join(s.name for s in todo)
        progress(f"building {names} {todo[0].version} from {todo[0].source} (once per"
                 f" machine; log {logfile})")
        started = time.monotonic()
        partials = []
        for spec in todo:
            _dest(spec).parent.mkdir(parents=True, exist_ok=True)
            partial = _dest(spec).with_name(_dest(spec).name + ".partial")
            if partial.exists():
                shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
            partials.append(partial)
        done = threading.Event()

        def heartbeat() -> None:  # a cold build takes minutes: say it is still going
            while not done.wait(HEARTBEAT_SECONDS):
                progress(f"still building {names}: {time.monotonic() - started:.0f} s")

        ticker = threading.Thread(target=heartbeat, daemon=True)
        ticker.start()
        try:
            if kubernetes:
                _build_go_k8s_group(todo, partials, workdir, logfile)
            else:
                _BUILDERS[todo[0].source](todo[0], partials[0], workdir, logfile)
        finally:
            done.set()
            ticker.join()
        for spec, partial in zip(todo, partials, strict=True):
            partial.rename(_dest(spec))  # only a complete build ever gets the final name
        progress(f"built {names} {todo[0].version} in {time.monotonic() - started:.0f} s")


def ensure(spec: Spec, progress: Progress) -> Path:
    """The path of the program (a binary, or a distribution directory for OpenSearch),
    building it first when the cache does not hold it."""
    found = _cached(spec)
    if found is not None:
        return found
    _build([spec], progress)
    return _dest(spec)


def plan(names: list[str] | None = None) -> list[list[Spec]]:
    """What ensure_all would build: one group per build (the Kubernetes programs of one
    version together), the longest first; empty when the cache holds everything."""
    specs = load_specs()
    groups: dict[str, list[Spec]] = {}
    for name in names or list(specs):
        spec = specs[name]
        if _cached(spec) is not None:
            continue
        key = f"k8s-{spec.version}" if spec.source == "go-k8s" else name
        groups.setdefault(key, []).append(spec)
    return sorted(groups.values(), key=lambda g: -_estimate(g))


def _estimate(group: list[Spec]) -> float:
    key = "k8s" if group[0].source == "go-k8s" else group[0].name
    return float(ESTIMATE_SECONDS.get(key, 120))


def ensure_all(progress: Progress, names: list[str] | None = None,
               workers: int | None = None) -> dict[str, Path]:
    """Every program's path, building what the cache lacks: independent builds run side by
    side (`workers`, default 2: a Go build keeps both cores busy while the other downloads
    modules or links; each needs up to ~3 GiB), longest first, one progress line per build
    with its share of the estimated total."""
    groups = plan(names)
    if groups:
        total = sum(_estimate(g) for g in groups)
        progress(f"{len(groups)} build(s) to make, about {total / 60:.0f} CPU-minutes"
                 " estimated on 2 cores; once per machine")
        finished = [0.0]
        lock = threading.Lock()

        def one(group: list[Spec]) -> None:
            _build(group, progress)
            with lock:
                finished[0] += _estimate(group)
                progress(f"builds {finished[0] / total:.0%} done (estimated)")

        count = workers or int(os.environ.get("WATCHKEEPER_LAB_BUILD_WORKERS", "2"))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, count)) as pool:
            for future in [pool.submit(one, g) for g in groups]:
                future.result()  # the first failure, with its log's tail
    specs = load_specs()
    return {name: ensure(specs[name], progress) for name in (names or list(specs))}


def path_of(spec: Spec) -> Path:
    """Where the program is, or will be once built (a background build may be under way)."""
    return _cached(spec) or _dest(spec)


def background_names() -> list[str]:
    """The programs built after the lab is up (second versions, ArgoCD and its tools)."""
    return [name for name, spec in load_specs().items() if spec.background]


def building() -> list[str]:
    """Builds under way on this machine now (their lock is held), by build label."""
    busy = []
    for path in sorted((cache_root() / "locks").glob("*.lock")):
        with path.open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append(path.stem)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
    return busy


def start_background(progress: Progress) -> int | None:
    """Build the background programs in a detached process (its log in the cache's logs/);
    the PID, or None when nothing is missing or every missing build is already under way.
    The process outlives `lab down`: the cache is the machine's, and a build that was stopped
    half-way starts over."""
    missing = [spec.name for group in plan(background_names()) for spec in group]
    if not missing or set(missing) <= set(building()):
        return None
    logfile = cache_root() / "logs" / "build-background.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("a") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "watchkeeper_lab.build", *missing],
                                stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    progress(f"building {', '.join(missing)} in the background (pid {proc.pid}, log"
             f" {logfile}); the lab uses each once it is built")
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Build the lab's programs into the cache.")
    parser.add_argument("names", nargs="*", help="entries of versions.toml (default: all)")
    args = parser.parse_args(argv)
    try:
        ensure_all(lambda line: print(time.strftime("%H:%M:%S"), line, flush=True),
                   args.names or None)
    except LabError as exc:
        print(f"error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
