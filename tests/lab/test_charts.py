"""The platform's Helm charts, served by the lab's chart repository: `helm template` of each
chart version renders that version's image and version-dependent flags; the objects ArgoCD
synced are what the Application's path renders. (A chart version committed to git changing the
version the pod runs: tests/lab/test_upgrade_chart.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchkeeper_lab import Lab, build, seed

CHARTS = Path(__import__("watchkeeper_lab").__file__).parent / "charts"
STORE_PATH = "clusters/observability/thanos-store"


def helm() -> str:
    return str(build.path_of(build.load_specs()["helm"]))


def kubectl() -> str:
    return str(build.path_of(build.load_specs()["kubectl"]))


def template(lab: Lab, chart: str, version: str) -> list[dict[str, Any]]:
    """`helm template` of a chart version fetched from the lab's chart repository."""
    argv = [helm(), "template", chart, chart, "--repo", lab.chart_repo_url,
            "--version", version, "--namespace", "monitoring"]
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": f"{home}/cache",
               "HELM_CONFIG_HOME": f"{home}/config", "HELM_DATA_HOME": f"{home}/data"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return first


def poll(what: str, check: Callable[[], Any], deadline_s: float = 150.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"{what}: not within {deadline_s} s")


@pytest.mark.parametrize("chart", sorted(json.loads((CHARTS / "versions.json").read_text())))
def test_each_chart_version_renders_its_own_version(lab: Lab, chart: str) -> None:
    versions: dict[str, str] = json.loads((CHARTS / "versions.json").read_text())[chart]
    assert len(versions) >= 2, f"{chart}: two chart versions to upgrade between"
    rendered = {}
    for chart_version, app_version in versions.items():
        main = container(workload(template(lab, chart, chart_version)))
        assert main["image"].endswith(f":{app_version}"), (chart_version, main["image"])
        rendered[app_version] = main["args"]
    if chart == "thanos-receive":  # the Cap'n Proto replication listener exists from v0.40
        flags = {v: any(a.startswith("--receive.capnproto-address") for a in args)
                 for v, args in rendered.items()}
        assert flags == {"v0.38.0": False, "v0.40.1": True}
    if chart == "prometheus-agent":  # Prometheus 3 replaced --enable-feature=agent by --agent
        assert "--enable-feature=agent" in rendered["v2.42.0"]
        assert "--agent" in rendered["v3.16.0"]
        assert "--enable-feature=agent" not in rendered["v3.16.0"]


def test_the_synced_objects_are_what_the_application_path_renders(lab: Lab) -> None:
    """Rendered as the repo-server does (the Kustomization inflating the chart), compared
    with the StatefulSet ArgoCD applied: same image, same arguments."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "gitops"
        seed.git(["clone", "-q", str(lab.dir / "git" / "platform.git"), str(work)], Path(tmp))
        proc = subprocess.run([kubectl(), "kustomize", "--enable-helm",
                               f"--helm-command={helm()}", str(work / STORE_PATH)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        kustomization = yaml.safe_load((work / STORE_PATH / "kustomization.yaml").read_text())
    rendered = container(workload([d for d in yaml.safe_load_all(proc.stdout) if d]))
    chart = kustomization["helmCharts"][0]
    plain = container(workload(template(lab, "thanos-store", chart["version"])))
    assert rendered["image"] == plain["image"]
    from kubernetes import client, config

    live = client.AppsV1Api(config.new_client_from_config(config_file=str(lab.kubeconfig))
                            ).read_namespaced_stateful_set("thanos-store", "monitoring")
    live_container = live.spec.template.spec.containers[0]
    assert live_container.image == rendered["image"]
    assert live_container.args == rendered["args"]


def set_chart_version(lab: Lab, version: str | None) -> tuple[str, str]:
    """Commit the store Application's chart at `version` (None: leave it); (the version it
    was at, the new commit's SHA)."""
    bare = lab.dir / "git" / "platform.git"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        seed.git(["clone", "-q", str(bare), str(work)], Path(tmp))
        target = work / STORE_PATH / "kustomization.yaml"
        kustomization = yaml.safe_load(target.read_text())
        was = str(kustomization["helmCharts"][0]["version"])
        if version is None:
            return was, seed.git(["rev-parse", "HEAD"], work).strip()
        kustomization["helmCharts"][0]["version"] = version
        target.write_text(yaml.safe_dump(kustomization, sort_keys=False))
        seed.git(["commit", "-q", "-am", f"thanos-store: chart {version}"], work)
        seed.git(["push", "-q", "origin", "HEAD:main"], work)
        return was, seed.git(["rev-parse", "HEAD"], work).strip()


def store_version(lab: Lab) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{lab.addresses.store}:10902/metrics",
                                    timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return None
    found = re.search(r'^thanos_build_info\{.*[{,]version="([^"]+)"', text, re.MULTILINE)
    return found.group(1) if found else None
