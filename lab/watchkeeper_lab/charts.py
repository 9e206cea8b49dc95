"""The lab's chart repository: our charts (charts/<name>/), packaged at every version that
charts/versions.json lists, with the `index.yaml` a Helm client reads, served over HTTP by the
`chart-repo` component."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import resources
from pathlib import Path

from watchkeeper_lab.errors import LabError

PORT = 8879


def source() -> Path:
    return Path(str(resources.files("watchkeeper_lab").joinpath("charts")))


def versions() -> dict[str, dict[str, str]]:
    """chart -> {chart version: appVersion (the image tag it runs by default)}."""
    data: dict[str, dict[str, str]] = json.loads((source() / "versions.json").read_text())
    return data


def _fingerprint(url: str) -> str:
    digest = hashlib.sha256(url.encode())
    for path in sorted(source().rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(source())).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def publish(helm: Path, out: Path, url: str) -> list[str]:
    """Package every chart version into `out` and index it for `url` (only when the charts
    changed: a repository's packages do not change under a version); the packages."""
    stamp = out / ".watchkeeper-charts.sha256"
    fingerprint = _fingerprint(url)
    packages = [f"{chart}-{version}.tgz" for chart, listed in versions().items()
                for version in listed]
    if stamp.exists() and stamp.read_text() == fingerprint and all(
            (out / name).exists() for name in packages):
        return packages
    out.mkdir(parents=True, exist_ok=True)
    for chart, listed in versions().items():
        for version, app_version in listed.items():
            _helm(helm, "package", str(source() / chart), "--version", version,
                  "--app-version", app_version, "--destination", str(out))
    _helm(helm, "repo", "index", str(out), "--url", url)
    stamp.write_text(fingerprint)
    return packages


def _helm(helm: Path, *args: str) -> str:
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"helm {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout
