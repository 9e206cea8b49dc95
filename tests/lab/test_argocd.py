"""Real ArgoCD (argocd-application-controller + argocd-repo-server v3.6, Redis) syncing from
the lab's git repository: the platform's Applications Synced at git's HEAD and Healthy; a new
commit applied at its SHA; a hand edit reverted by self-heal; with auto-sync off, a manual
sync (the Application's `operation`, what `argocd app sync` sends) applies the commit it
names and nothing happens before it."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from watchkeeper_lab import Lab, argocd, seed

NAMESPACE = "lab-argocd-test"
APP = "lab-argocd-test"
PATH = "tests/argocd-demo"


def poll(what: str, check: Callable[[], Any], deadline_s: float = 90.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {deadline_s} s")


def commit(lab: Lab, files: dict[str, str | None], message: str) -> str:
    """Commit `files` (None: delete) on main of the lab's GitOps repository; its SHA."""
    bare = lab.dir / "git" / "platform.git"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "work"
        seed.git(["clone", "-q", str(bare), str(work)], Path(tmp))
        for path, text in files.items():
            target = work / path
            if text is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        seed.git(["add", "-A"], work)
        seed.git(["commit", "-q", "-m", message], work)
        seed.git(["push", "-q", "origin", "HEAD:main"], work)
        return seed.git(["rev-parse", "HEAD"], work).strip()


def configmap(value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "demo", "namespace": NAMESPACE},
                       "data": {"value": value}})


def app(lab: Lab) -> dict[str, Any]:
    found: dict[str, Any] = argocd.custom_api(lab.kubeconfig).get_namespaced_custom_object(
        argocd.GROUP, argocd.VERSION, argocd.NAMESPACE, "applications", APP)
    return found


def live_value(lab: Lab) -> str | None:
    try:
        data = lab.core_api().read_namespaced_config_map("demo", NAMESPACE).data or {}
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return data.get("value")


def synced_at(lab: Lab, sha: str) -> bool:
    state = argocd.summary(app(lab))
    return state["sync"] == "Synced" and state["revision"] == sha


@pytest.fixture(scope="module")
def demo(lab: Lab) -> Iterator[str]:
    """An Application of the test's own (automated sync with self-heal) over one ConfigMap;
    removed afterwards with what it created. Yields the first commit's SHA."""
    if not lab.argocd_running():
        pytest.fail("ArgoCD is not running in the lab: the lab fixture hands the platform to"
                    " ArgoCD once it is built (see tests/lab/conftest.py)")
    sha = commit(lab, {f"{PATH}/configmap.json": configmap("one")}, "demo: one")
    api = argocd.custom_api(lab.kubeconfig)
    body = {"apiVersion": f"{argocd.GROUP}/{argocd.VERSION}", "kind": "Application",
            "metadata": {"name": APP, "namespace": argocd.NAMESPACE},
            "spec": {"project": "default",
                     "source": {"repoURL": f"file://{lab.dir / 'git' / 'platform.git'}",
                                "targetRevision": "main", "path": PATH},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": NAMESPACE},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                    "syncOptions": ["CreateNamespace=true"]}}}
    api.create_namespaced_custom_object(argocd.GROUP, argocd.VERSION, argocd.NAMESPACE,
                                        "applications", body)
    try:
        yield sha
    finally:
        api.delete_namespaced_custom_object(argocd.GROUP, argocd.VERSION, argocd.NAMESPACE,
                                            "applications", APP)
        try:
            lab.core_api().delete_namespace(NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
        commit(lab, {f"{PATH}/configmap.json": None}, "demo: removed")


def test_the_platform_applications_are_synced_by_argocd_at_git_head(lab: Lab) -> None:
    head = lab.git_head()
    apps = {a["metadata"]["name"]: argocd.summary(a) for a in argocd.applications(lab.kubeconfig)}
    platform_apps = {n: s for n, s in apps.items() if n != APP}
    assert "observability-thanos-receive" in platform_apps
    for name, state in platform_apps.items():
        assert state["sync"] == "Synced" and state["revision"] == head, (name, state)
        assert state["health"] == "Healthy", (name, state)
    # ArgoCD's own server-side apply wrote the receivers' StatefulSet.
    from kubernetes import client, config

    sts = client.AppsV1Api(config.new_client_from_config(config_file=str(lab.kubeconfig))
                           ).read_namespaced_stateful_set("thanos-receive", "monitoring")
    assert "argocd-controller" in {f.manager for f in sts.metadata.managed_fields}
    assert lab.status().syncer == "argocd"


def test_a_new_commit_is_applied_at_its_sha(lab: Lab, demo: str) -> None:
    poll("the first commit synced", lambda: synced_at(lab, demo) and live_value(lab) == "one")
    began = time.monotonic()
    sha = commit(lab, {f"{PATH}/configmap.json": configmap("two")}, "demo: two")
    # No refresh requested: the controller finds the commit by polling git.
    poll("the second commit synced", lambda: synced_at(lab, sha) and live_value(lab) == "two")
    took = time.monotonic() - began
    print(f"commit -> Synced and applied: {took:.1f} s")
    history = app(lab)["status"].get("history") or []
    assert history and history[-1]["revision"] == sha


def test_a_hand_edit_is_reverted_by_self_heal(lab: Lab, demo: str) -> None:
    poll("synced", lambda: app(lab)["status"].get("sync", {}).get("status") == "Synced")
    expected = live_value(lab)
    lab.core_api().patch_namespaced_config_map("demo", NAMESPACE, {"data": {"value": "by hand"}})
    poll("self-heal restored git's value", lambda: live_value(lab) == expected)


def test_with_auto_sync_off_a_manual_sync_applies_the_commit_it_names(
    lab: Lab, demo: str
) -> None:
    api = argocd.custom_api(lab.kubeconfig)
    api.patch_namespaced_custom_object(argocd.GROUP, argocd.VERSION, argocd.NAMESPACE,
                                       "applications", APP, {"spec": {"syncPolicy": None}})
    before = live_value(lab)
    sha = commit(lab, {f"{PATH}/configmap.json": configmap("manual")}, "demo: manual")
    api.patch_namespaced_custom_object(  # a hard refresh: compare with git now
        argocd.GROUP, argocd.VERSION, argocd.NAMESPACE, "applications", APP,
        {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}}})
    poll("OutOfSync against the new commit", lambda: (
        argocd.summary(app(lab))["sync"] == "OutOfSync"
        and argocd.summary(app(lab))["revision"] == sha))
    time.sleep(5)
    assert live_value(lab) == before, "auto-sync is off, yet the commit was applied"
    api.patch_namespaced_custom_object(
        argocd.GROUP, argocd.VERSION, argocd.NAMESPACE, "applications", APP,
        {"operation": {"initiatedBy": {"username": "watchkeeper-test"},
                       "sync": {"revision": sha}}})
    poll("the manual sync succeeded", lambda: (
        argocd.summary(app(lab))["operation"] == "Succeeded" and synced_at(lab, sha)))
    assert live_value(lab) == "manual"
