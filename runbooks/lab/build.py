"""Where the lab's programs come from: pinned in versions.toml, built or fetched from package
registries once, cached by name and version.

Go programs whose go.mod has replace directives (Thanos, etcd) cannot be `go install`ed; they
are built as dependencies of a small wrapper module of ours that copies the program's replace
list (the recipe in ../shared/LAB-BUILD-NOTES.md). Nothing is copied out of the module cache.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from runbooks.lab.errors import LabError

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
    def binary_name(self) -> str:
        return str(self.options.get("binary", self.name))


def load_specs() -> dict[str, Spec]:
    text = resources.files("runbooks.lab").joinpath("versions.toml").read_text()
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
    _run(["go", "get", "-tool", f"{package}@{spec.version}"], workdir, logfile, env)
    ldflags = "-s -w " + str(spec.options.get("ldflags", "")).format(v=spec.version.lstrip("v"))
    tags = str(spec.options.get("tags", "netgo"))
    _run(["go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o",
          str(dest), package], workdir, logfile, env)


def _build_go_k8s(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    """Kubernetes requires its staging modules at v0.0.0 (replaced by local paths in its own
    tree); a wrapper maps each to the published v0.N.M that matches v1.N.M."""
    package, staging = spec.options["package"], spec.options["staging"]
    env = _go_env(spec, workdir)
    upstream = _wrapper_module(spec, workdir, logfile, env)
    for require in upstream.get("Require") or []:
        if require["Path"].startswith("k8s.io/") and require["Version"] == "v0.0.0":
            _run(["go", "mod", "edit", f"-replace={require['Path']}={require['Path']}@{staging}"],
                 workdir, logfile, env)
    _run(["go", "get", "-tool", f"{package}@{spec.version}"], workdir, logfile, env)
    minor = spec.version.split(".")[1]
    # As hack/lib/version.sh: tools that parse `--version` (and Helm's kubeVersion) need them.
    ldflags = ["-s", "-w"]
    for prefix in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [f"-X {prefix}.gitVersion={spec.version}", f"-X {prefix}.gitMajor=1",
                    f"-X {prefix}.gitMinor={minor}", f"-X {prefix}.gitTreeState=clean"]
    _run(["go", "build", "-trimpath", "-ldflags", " ".join(ldflags), "-o", str(dest), package],
         workdir, logfile, env)


def _build_go_install(spec: Spec, dest: Path, workdir: Path, logfile: Path) -> None:
    env = _go_env(spec, workdir)
    _run(["go", "install", "-trimpath", f"{spec.options['package']}@{spec.version}"], workdir,
         logfile, env)
    built = workdir / "gobin" / Path(spec.options["package"]).name
    shutil.move(str(built), dest)


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
             "go-k8s": _build_go_k8s, "maven": _fetch_maven}


def _override(spec: Spec) -> Path | None:
    explicit = os.environ.get(f"WATCHKEEPER_LAB_{spec.name.upper()}")
    if explicit:
        path = Path(explicit)
        if not path.exists():
            raise LabError(f"WATCHKEEPER_LAB_{spec.name.upper()}={explicit} does not exist")
        return path
    if os.environ.get("WATCHKEEPER_LAB_USE_PATH") == "1":
        found = shutil.which(spec.binary_name)
        if found:
            return Path(found)
    return None


def ensure(spec: Spec, progress: Progress) -> Path:
    """The path of the program (a binary, or a distribution directory for OpenSearch),
    building it first when the cache does not hold it."""
    override = _override(spec)
    if override is not None:
        return override
    if spec.source == "debian":
        binary = Path(spec.options["binary"])
        if not binary.exists():
            raise LabError(f"{binary} is missing: apt-get install {spec.options['deb']}"
                           " (scripts/setup.sh does it)")
        return binary
    directory = cache_root() / "bin" / spec.name / spec.version
    dest = directory / (spec.binary_name if spec.source != "maven" else "home")
    if dest.exists():
        return dest
    directory.mkdir(parents=True, exist_ok=True)
    workdir = cache_root() / "build" / f"{spec.name}-{spec.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = cache_root() / "logs" / f"build-{spec.name}-{spec.version}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    progress(f"building {spec.name} {spec.version} from {spec.source} (once per machine;"
             f" log {logfile})")
    started = time.monotonic()
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
    done = threading.Event()

    def heartbeat() -> None:  # a cold build takes minutes: say it is still going
        while not done.wait(HEARTBEAT_SECONDS):
            progress(f"still building {spec.name}: {time.monotonic() - started:.0f} s")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        _BUILDERS[spec.source](spec, partial, workdir, logfile)
    finally:
        done.set()
        ticker.join()
    partial.rename(dest)  # only a complete build ever gets the final name
    progress(f"built {spec.name} {spec.version} in {time.monotonic() - started:.0f} s")
    return dest


def ensure_all(progress: Progress, names: list[str] | None = None) -> dict[str, Path]:
    specs = load_specs()
    return {name: ensure(specs[name], progress) for name in (names or list(specs))}
