"""upgrade-chart and the GitOps workflow runbooks on the lab's real ArgoCD: a chart version
changed by a commit and proven running; the same change rolled back by a revert commit; a
change whose pods cannot start (an image tag with no build) named and reverted, the stuck pod
recreated on the restored template; the history joining deployments with commits."""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from watchkeeper_lab import Lab, seed

from tests.lab.test_charts import CHARTS, poll, set_chart_version, store_version
from tests.lab.test_receiver_agent_health import run

pytestmark = pytest.mark.lab
CLUSTER = "observability"
APP = "observability-thanos-store"


def branch_log(lab: Lab, n: int = 5) -> list[str]:
    """The tracked branch's newest commits (full message), read with git here."""
    with tempfile.TemporaryDirectory() as tmp:
        out = seed.git(["--git-dir", str(lab.dir / "git" / "platform.git"), "log", "-n",
                        str(n), "--format=%H %B%x00", "main"], Path(tmp))
    return [c.strip() for c in out.split("\x00") if c.strip()]


def steps(journal: dict[str, Any], phase: str) -> list[dict[str, Any]]:
    return [s for s in journal["steps"] if s["phase"] == phase]


@pytest.fixture
def store_at_start(lab: Lab) -> Any:
    """The store's chart version and running version before; both put back after."""
    versions = json.loads((CHARTS / "versions.json").read_text())["thanos-store"]
    chart, _ = set_chart_version(lab, None)
    yield chart, versions
    now, _ = set_chart_version(lab, None)
    if now != chart:
        run(lab, Path(tempfile.mkdtemp()), "upgrade-chart", CLUSTER, "-e",
            "component=thanos-store", "-e", f"version={chart}", "-e", "allow_downgrade=true")
    poll("store back at its version", lambda: store_version(lab) == versions[chart].lstrip("v"))


def test_a_chart_upgrade_is_committed_synced_proven_then_rolled_back_by_a_revert(
        lab: Lab, tmp_path: Path, store_at_start: Any) -> None:
    chart, versions = store_at_start
    other = next(v for v in versions if v != chart)
    head = branch_log(lab, 1)[0]

    # --check: the plan (rendered and live diff, dry run) and no commit.
    result, journal = run(lab, tmp_path, "upgrade-chart", CLUSTER, "-e",
                          "component=thanos-store", "-e", f"version={other}", "-e",
                          "allow_downgrade=true", "--check")
    assert result.returncode == 0, result.stdout
    plan = steps(journal, "playbook")[0]
    assert plan["status"] == "changed", plan
    assert f"would commit chart thanos-store {chart} -> {other}" in plan["message"]
    assert f"+ image: quay.io/thanos/thanos:{versions[other]}" in plan["message"]
    assert branch_log(lab, 1)[0] == head

    result, journal = run(lab, tmp_path, "upgrade-chart", CLUSTER, "-e",
                          "component=thanos-store", "-e", f"version={other}", "-e",
                          "allow_downgrade=true")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    commit = branch_log(lab, 1)[0]
    assert f"Watchkeeper-Run: {journal['run_id']}" in commit
    sha = commit.split()[0]
    sync = steps(journal, "playbook")[1]
    assert f"{APP} Synced at {sha[:12]} and Healthy" in sync["message"], sync
    assert {s["name"]: s["status"] for s in steps(journal, "post-gate")} == {
        "deployed": "ok", "canary in Query": "ok"}
    assert store_version(lab) == versions[other].lstrip("v")  # read from the pod itself

    # The monthly checklist sees the store's chart behind its repository's newest.
    result, journal = run(lab, tmp_path, "checklist-monthly", CLUSTER)
    charts = {c["name"]: c for s in journal["steps"] for c in s.get("checks") or []
              if c["name"].startswith("chart ")}
    store = charts[f"chart thanos-store ({APP})"]
    assert store["status"] == "warn", store
    assert store["evidence"].startswith(f"chart {other}, newest {chart}"), store
    assert f"-e application={APP} -e version={chart}" in store["hint"]
    assert charts["chart thanos-query (observability-thanos-query)"]["status"] == "ok"

    # The history joins ArgoCD's deployment with the commit.
    result, journal = run(lab, tmp_path, "gitops-history", CLUSTER, "-e",
                          "component=thanos-store", "-e", "limit=3")
    assert result.returncode == 0, result.stdout
    history = steps(journal, "playbook")[0]["message"]
    assert f"{sha[:12]} {APP}: upgrade chart to {other}" in history, history

    # Rolled back by a revert commit of exactly that commit, synced and gated.
    result, journal = run(lab, tmp_path, "gitops-rollback", CLUSTER, "-e",
                          "component=thanos-store", "-e", f"commit={sha[:12]}")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert f"This reverts commit {sha}." in branch_log(lab, 1)[0]
    assert set_chart_version(lab, None)[0] == chart
    poll("store back at its version", lambda: store_version(lab) == versions[chart].lstrip("v"))
    # A second rollback of the same commit is refused: nothing is reverted twice.
    result, journal = run(lab, tmp_path, "gitops-rollback", CLUSTER, "-e",
                          "component=thanos-store", "-e", f"commit={sha[:12]}")
    assert result.returncode != 0
    assert "already reverted" in journal["message"]


def test_pods_that_cannot_start_are_named_and_the_change_is_reverted(
        lab: Lab, tmp_path: Path, store_at_start: Any) -> None:
    """An image tag with no build: the pod stays in ImagePullBackOff, the wait names it, the
    rollback reverts the commit and recreates the stuck pod (a StatefulSet never replaces a
    pod that never became Ready by itself)."""
    chart, versions = store_at_start
    result, journal = run(lab, tmp_path, "upgrade-chart", CLUSTER, "-e",
                          "component=thanos-store", "-e",
                          'values={"image": {"tag": "v9.9.9-missing"}}', "-e",
                          "sync_timeout=25")
    assert result.returncode != 0
    failed = next(s for s in steps(journal, "playbook") if s["status"] == "failed")
    assert "pod thanos-store-0: container thanos-store" in failed["message"], failed
    assert "ImagePullBackOff" in failed["message"] or "ErrImagePull" in failed["message"]
    rollback = steps(journal, "rollback")
    assert [s["status"] for s in rollback] == ["changed", "changed"], rollback
    assert "recreated thanos-store-0 from the restored template" in rollback[1]["message"]
    log = branch_log(lab, 2)
    assert log[0].split("\n")[0].split(" ", 1)[1].startswith("revert:")
    assert f"This reverts commit {log[1].split()[0]}." in log[0]
    assert "v9.9.9-missing" not in json.dumps(lab_values(lab))
    poll("store Ready on its version", lambda: store_version(lab) == versions[chart].lstrip("v"))


def lab_values(lab: Lab) -> Any:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        text = seed.git(["--git-dir", str(lab.dir / "git" / "platform.git"), "show",
                         "main:clusters/observability/thanos-store/values.yaml"], Path(tmp))
    return yaml.safe_load(text)


# ------------------------------------------------------------------------- upgrade-thanos

RECEIVE_PATH = "clusters/observability/thanos-receive"


def receive_chart(lab: Lab) -> str:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        text = seed.git(["--git-dir", str(lab.dir / "git" / "platform.git"), "show",
                         f"main:{RECEIVE_PATH}/kustomization.yaml"], Path(tmp))
    return str(yaml.safe_load(text)["helmCharts"][0]["version"])


def receiver_versions(lab: Lab) -> dict[str, str | None]:
    """The version each receiver reports (thanos_build_info through the pod proxy)."""
    from tests.lab.test_kubernetes import NS, core, proxied

    found: dict[str, str | None] = {}
    for pod in core(lab).list_namespaced_pod(NS, label_selector=(
            "app.kubernetes.io/name=thanos-receive")).items:
        try:
            text = proxied(lab, pod.metadata.name, 10902, "metrics")
        except Exception:  # a receiver that is not serving reports no version
            found[pod.metadata.name] = None
            continue
        match = re.search(r'^thanos_build_info\{.*[{,]version="([^"]+)"', text, re.MULTILINE)
        found[pod.metadata.name] = match.group(1) if match else None
    return found


@pytest.fixture
def receive_at_start(lab: Lab) -> Any:
    versions = json.loads((CHARTS / "versions.json").read_text())["thanos-receive"]
    chart = receive_chart(lab)
    yield chart, versions
    if receive_chart(lab) != chart:
        run(lab, Path(tempfile.mkdtemp()), "upgrade-thanos", CLUSTER, "-e", f"version={chart}",
            "-e", "allow_downgrade=true", "-e", "settle=0")
    want = versions[chart].lstrip("v")
    poll("receivers back at their version", lambda: set(receiver_versions(lab).values()) ==
         {want}, 300)


def test_receivers_are_upgraded_one_at_a_time_without_losing_a_sample(
        lab: Lab, tmp_path: Path, receive_at_start: Any) -> None:
    """0.40 -> 0.38 (a downgrade: refused until allowed), then 0.38 -> 0.40 under the canary
    load: one commit per receiver from the highest ordinal, each proven on the new version
    and the common ring before the next; no canary sample missing in Query."""
    from tests.lab.test_scale_receivers import assert_no_canary_gap

    chart, versions = receive_at_start
    old = next(v for v in versions if versions[v] < versions[chart])
    result, journal = run(lab, tmp_path, "upgrade-thanos", CLUSTER, "-e", f"version={old}")
    assert result.returncode != 0
    assert f"a downgrade: StatefulSet/thanos-receive thanos: {versions[chart]} ->" \
        f" {versions[old]}" in journal["message"]
    assert receive_chart(lab) == chart  # nothing committed

    result, journal = run(lab, tmp_path, "upgrade-thanos", CLUSTER, "-e", f"version={old}",
                          "-e", "allow_downgrade=true", "-e", "settle=0")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert set(receiver_versions(lab).values()) == {versions[old].lstrip("v")}

    start = time.time()
    result, journal = run(lab, tmp_path, "upgrade-thanos", CLUSTER, "-e", f"version={chart}",
                          "-e", "settle=2")
    end = time.time()
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    plan = steps(journal, "playbook")[0]["message"]
    assert "release notes: thanos 0.40.0: receivers listen for Cap'n Proto" in plan, plan
    rolled = re.findall(r"(thanos-receive-\d) [\d.]+ s: ", plan)
    assert rolled == ["thanos-receive-2", "thanos-receive-1", "thanos-receive-0"], plan
    assert f"Ready on {versions[chart]}" in plan
    log = branch_log(lab, 5)
    assert "rolled out, hold released" in log[0]
    assert [line.split("\n")[0].split(": ", 1)[1].split(" to ")[0] for line in log[1:4]] == [
        "roll thanos-receive-0", "roll thanos-receive-1", "roll thanos-receive-2"]
    assert set(receiver_versions(lab).values()) == {versions[chart].lstrip("v")}
    assert {s["status"] for s in steps(journal, "post-gate")} == {"ok"}
    assert_no_canary_gap(lab, start, end)


def test_a_receiver_that_cannot_start_stops_the_rollout_and_is_reverted(
        lab: Lab, tmp_path: Path, receive_at_start: Any) -> None:
    """An image with no build: the first receiver rolled (the highest ordinal) never becomes
    Ready; the run names it, the others are untouched, and the revert brings it back."""
    chart, versions = receive_at_start
    result, journal = run(lab, tmp_path, "upgrade-thanos", CLUSTER, "-e",
                          'values={"image": {"tag": "v9.9.9-missing"}}', "-e",
                          "ready_timeout=20")
    assert result.returncode != 0
    failed = next(s for s in steps(journal, "playbook") if s["status"] == "failed")
    assert "thanos-receive-2 not proven within 20 s" in failed["message"], failed
    assert "rolled to v9.9.9-missing: none; failed at thanos-receive-2; not started:" \
        " thanos-receive-1, thanos-receive-0" in failed["message"]
    rollback = steps(journal, "rollback")
    assert [s["status"] for s in rollback] == ["changed", "changed"], rollback
    assert "recreated thanos-receive-2 from the restored template" in rollback[1]["message"]
    assert "v9.9.9-missing" not in json.dumps(lab_values_of(lab, RECEIVE_PATH))
    poll("every receiver on its version", lambda: set(receiver_versions(lab).values()) ==
         {versions[chart].lstrip("v")}, 120)


def lab_values_of(lab: Lab, path: str) -> Any:
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        text = seed.git(["--git-dir", str(lab.dir / "git" / "platform.git"), "show",
                         f"main:{path}/values.yaml"], Path(tmp))
        listing = seed.git(["--git-dir", str(lab.dir / "git" / "platform.git"), "ls-tree",
                            "--name-only", f"main:{path}"], Path(tmp))
    assert "watchkeeper-rollout.yaml" not in listing  # the hold went with the revert
    return yaml.safe_load(text)


# --------------------------------------------------------------------- upgrade-prometheus

AGENTS = "k8s-cluster-01"


def agent_version(lab: Lab) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{lab.addresses.agent(0)}:9090/api/v1/status/"
                                    "buildinfo", timeout=3) as response:
            # Debian's build says 2.42.0+ds
            return str(json.load(response)["data"]["version"]).split("+")[0]
    except OSError:
        return None


def test_an_agent_goes_from_prometheus_2_to_3_with_the_agent_flag_and_its_series_continue(
        lab: Lab, tmp_path: Path) -> None:
    """Chart 1.0.0 (Prometheus 2.42, --enable-feature=agent) -> 2.0.0 (3.16, --agent): the
    plan lists the 3.0 breaking changes; the agent runs 3.x, delivers again, its jobs are
    fresh, and the canary series it scrapes has at most the restart's sample missing. Then
    back (a downgrade, allowed)."""
    from tests.lab.test_scale_receivers import SCRAPE_SECONDS, wait_canary_past

    versions = json.loads((CHARTS / "versions.json").read_text())["prometheus-agent"]
    old, new = sorted(versions, key=lambda v: versions[v])
    start = time.time()
    try:
        result, journal = run(lab, tmp_path, "upgrade-prometheus", AGENTS, "-e",
                              f"version={new}")
        assert result.returncode == 0, (result.stdout, journal.get("message"))
        plan = steps(journal, "playbook")[0]["message"]
        assert "prometheus 3.0.0: agent mode is the --agent flag" in plan, plan
        assert "- - --enable-feature=agent | + - --agent" in plan or "--agent" in plan
        assert agent_version(lab) == versions[new].lstrip("v")
        assert {s["name"]: s["status"] for s in steps(journal, "post-gate")} == {
            "deployed": "ok", "agent delivering": "ok", "jobs fresh": "ok"}
    finally:
        result, journal = run(lab, tmp_path, "upgrade-prometheus", AGENTS, "-e",
                              f"version={old}", "-e", "allow_downgrade=true")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert agent_version(lab) == versions[old].lstrip("v")
    end = time.time()
    wait_canary_past(lab, end)
    times = canary_times(lab, AGENTS, start - 30, end)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    print(f"canary over 2 -> 3 -> 2 ({end - start:.0f} s): {len(times)} samples, largest gap"
          f" {max(gaps):.0f} s (scrape interval {SCRAPE_SECONDS} s)")
    # Continuous: each restart of the scraper may cost a couple of scrapes, never more.
    assert max(gaps) <= 4 * SCRAPE_SECONDS, gaps


def canary_times(lab: Lab, cluster: str, start: float, end: float) -> list[float]:
    """The cluster's canary sample times in Query over [start, end] (every replica's copy)."""
    import urllib.parse
    import urllib.request

    query = f'watchkeeper_lab_canary_total{{cluster="{cluster}"}}[{int(end - start)}s]'
    url = (f"http://{lab.addresses.query}:10902/api/v1/query?" + urllib.parse.urlencode(
        {"query": query, "time": f"{end:.3f}", "dedup": "false"}))
    with urllib.request.urlopen(url, timeout=20) as response:
        rows = json.load(response)["data"]["result"]
    return sorted({float(t) for row in rows for t, _ in row["values"]})


# ------------------------------------------------------------------------------ patch-images

WORKLOADS = "k8s-cluster-01,k8s-cluster-02"


def agent_image(lab: Lab, cluster: str) -> str:
    from tests.lab.test_kubernetes import apps

    sts = apps(lab).read_namespaced_stateful_set("prometheus-agent", cluster)
    return str(sts.spec.template.spec.containers[0].image)


def test_patch_images_rolls_the_canary_first_and_stops_at_its_failure(
        lab: Lab, tmp_path: Path) -> None:
    """A tag with no build: the canary cluster fails (named), the next wave never starts
    (its agent untouched), the canary's commit is reverted. Then a tag that exists: the canary,
    then the other cluster, each delivering again; the report says what each runs."""
    first, second = WORKLOADS.split(",")
    before = agent_image(lab, second)
    result, journal = run(lab, tmp_path, "patch-images", WORKLOADS, "-e",
                          "component=prometheus-agent", "-e", "tag=v3.99.9-missing", "-e",
                          "sync_timeout=20")
    assert result.returncode != 0
    assert {s["cluster"] for s in steps(journal, "playbook")} == {first}  # no second wave
    failed = next(s for s in steps(journal, "playbook") if s["status"] == "failed")
    assert "ImagePullBackOff" in failed["message"] or "ErrImagePull" in failed["message"]
    assert agent_image(lab, second) == before
    reverted = {s["cluster"]: s for s in steps(journal, "rollback")
                if s["name"].startswith("Revert")}
    assert reverted[first]["status"] == "changed" and reverted[second]["status"] == "ok"
    poll("the canary's agent back", lambda: agent_image(lab, first) == before)

    try:
        result, journal = run(lab, tmp_path, "patch-images", WORKLOADS, "-e",
                              "component=prometheus-agent", "-e", "tag=v3.16.0")
        assert result.returncode == 0, (result.stdout, journal.get("message"))
        order = [s["cluster"] for s in steps(journal, "playbook") if s["name"].startswith(
            "Sync at the commit")]
        assert order == [first, second]
        images = {s["cluster"]: s["message"] for s in steps(journal, "post-gate")
                  if s["name"] == "images"}
        assert all(m.endswith("runs quay.io/prometheus/prometheus:v3.16.0")
                   for m in images.values()), images
        assert agent_version(lab) == "3.16.0"
    finally:
        result, journal = run(lab, tmp_path, "patch-images", WORKLOADS, "-e",
                              "component=prometheus-agent", "-e", "tag=", "-e",
                              "allow_downgrade=true")
    assert result.returncode == 0, (result.stdout, journal.get("message"))
    assert agent_image(lab, second) == before
