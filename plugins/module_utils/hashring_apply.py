# -*- coding: utf-8 -*-
# Copyright: watchkeeper maintainers; Apache-2.0
"""Applying a Thanos Receive hashring and proving it: shared by the thanos_hashring module and
the scale module (which changes the ring one member at a time).

`apply_ring(client, params, check_mode)` builds the ring (catch-all endpoints from the members
or every Ready receive pod; or an exact `content`), validates it, applies it (ConfigMap patch or
a commit to the GitOps repository) and waits until every receiver reports the new file's hash.
It raises KubeFailure with the details on any refusal or failed proof.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import os
import shutil
import tempfile

from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    argocd_app,
    gitops_repo,
    kube,
)
from ansible_collections.watchkeeper.platform.plugins.module_utils import hashring as hr
from ansible_collections.watchkeeper.platform.plugins.module_utils.promtext import parse, total

ARGUMENT_SPEC = dict(
    kube.CONNECTION_SPEC,
    statefulset=dict(type="str", default="thanos-receive"),
    configmap=dict(type="str", required=True),
    key=dict(type="str", default="hashrings.json"),
    members=dict(type="list", elements="str"),
    endpoint_template=dict(type="str",
                           default="{pod}.{service}.{namespace}.svc.cluster.local:{port}"),
    service=dict(type="str", default="thanos-receive"),
    grpc_port=dict(type="int", default=10901),
    http_port=dict(type="int", default=10902),
    replication_factor=dict(type="int", default=2),
    mode=dict(type="str", choices=["direct", "gitops"], default="direct"),
    git_url=dict(type="str"),
    git_path=dict(type="str"),
    git_branch=dict(type="str", default="main"),
    commit_message=dict(type="str"),
    application=dict(type="str", default=""),
    argocd_namespace=dict(type="str", default="argocd"),
    converge=dict(type="bool", default=True),
    converge_timeout=dict(type="float", default=180.0),
    converge_pods=dict(type="list", elements="str"),
    content=dict(type="str"),
)


def _endpoint(params, pod):
    return params["endpoint_template"].format(
        pod=pod.metadata.name, ip=pod.status.pod_ip or "", service=params["service"],
        namespace=params["namespace"], port=params["grpc_port"])


def receiver_metrics(client, params, pod_name):
    """The convergence-relevant metrics of one receiver, read through the pod proxy."""
    text = kube.proxy_get(client, params["namespace"], pod_name, params["http_port"], "metrics")
    names = ("thanos_receive_config_hash", "thanos_receive_config_last_reload_successful",
             "thanos_receive_hashrings_file_errors_total")
    samples = parse(text, names)
    return {n: total(samples, n) for n in names if n in samples}


def run_git(args, cwd):
    """git, its failure as a KubeFailure (what this module's callers catch)."""
    try:
        return gitops_repo.run_git(args, cwd)
    except gitops_repo.GitFailure as exc:
        raise kube.KubeFailure(exc.message, exc.hint) from exc


def ask_sync(client, params, commit):
    """GitOps mode, after a commit: ask ArgoCD to sync the receivers' Application at it (when
    the inventory names one) rather than wait for its next poll of git (3 minutes by default).
    The caller still proves the result; a request that cannot be made leaves the automated
    sync to do it. Returns what happened, for the result."""
    if not params.get("application") or not commit:
        return "waiting for ArgoCD's automated sync"
    try:
        argocd_app.request_sync(client, params["argocd_namespace"], params["application"],
                                commit)
    except kube.KubeFailure as exc:
        return "could not ask ArgoCD to sync (%s): waiting for its automated sync" % (
            exc.message[:200])
    return "sync of %s at %s requested" % (params["application"], commit[:12])


def commit_to_git(params, text, check_mode):
    """Write the ring into the ConfigMap manifest in the repository; return the commit."""
    if not params.get("git_url") or not params.get("git_path"):
        raise kube.KubeFailure("gitops mode needs git_url and git_path",
                               "set wk_git_url and wk_hashring_git_path in the inventory")

    def put_ring(manifest):
        manifest.setdefault("data", {})[params["key"]] = text

    return commit_yaml(params, params["git_path"], put_ring,
                       params.get("commit_message") or "hashring: update", check_mode,
                       "set wk_hashring_git_path to the hashring ConfigMap manifest")


def commit_yaml(params, git_path, edit, message, check_mode, hint):
    """Clone the GitOps repository, apply `edit(document)` to the YAML file `git_path`, commit
    and push; return the commit (the current one when nothing changed, None in check mode).
    Shared by every GitOps-mode change (the hashring, the receivers' replicas)."""
    import yaml

    work = tempfile.mkdtemp(prefix="wk-gitops-")
    try:
        run_git(["clone", "-q", "--depth", "1", "--branch", params["git_branch"],
              params["git_url"], work], "/")
        path = os.path.join(work, git_path)
        if not os.path.exists(path):
            raise kube.KubeFailure("%s is not in %s" % (git_path, params["git_url"]), hint)
        with open(path) as handle:
            document = yaml.safe_load(handle)
        edit(document)
        with open(path, "w") as handle:
            yaml.safe_dump(document, handle, sort_keys=False, default_style=None, width=1000)
        if check_mode:
            return None
        run_git(["add", git_path], work)
        if not run_git(["status", "--porcelain"], work).strip():
            return run_git(["rev-parse", "HEAD"], work).strip()
        run_git(["-c", "user.name=watchkeeper", "-c", "user.email=watchkeeper@localhost",
              "commit", "-q", "-m", message], work)
        run_git(["push", "-q", "origin", "HEAD:" + params["git_branch"]], work)
        return run_git(["rev-parse", "HEAD"], work).strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def converge(client, params, pods, expected, baseline_errors, configmap_text):
    """Wait until every pod reports `expected`; return (reported, lagging, seconds)."""
    api = kube.core(client)
    reported = {}

    def check():
        if params["mode"] == "gitops":  # first the sync (ArgoCD) must bring the ConfigMap
            cm = api.read_namespaced_config_map(params["configmap"], params["namespace"])
            if (cm.data or {}).get(params["key"]) != configmap_text:
                return False, "ConfigMap not synced from git yet"
        for name in pods:
            try:
                values = receiver_metrics(client, params, name)
            except Exception as exc:  # an unreachable pod lags; say why
                reported[name] = {"error": str(exc).splitlines()[0][:200]}
                continue
            reported[name] = values
        lagging = [n for n in pods if not _converged(reported.get(n, {}), expected,
                                                     baseline_errors.get(n))]
        return not lagging, lagging

    done, detail, waited = kube.wait_for("convergence", check, params["converge_timeout"])
    if isinstance(detail, str):
        return reported, list(pods), waited, detail
    return reported, ([] if done else detail), waited, ""


def _converged(values, expected, baseline_errors):
    # thanos_receive_config_last_reload_successful is never reset to 0 after a first success,
    # so it proves nothing: the hash and the file error counter do.
    if values.get("thanos_receive_config_hash") != expected:
        return False
    errors = values.get("thanos_receive_hashrings_file_errors_total", 0.0)
    return baseline_errors is None or errors <= baseline_errors


def _summary(result, check_mode):
    before = set(hr.endpoint_address(e) for r in result["previous"] if isinstance(r, dict)
                 for e in r.get("endpoints") or [])
    after = set(result["endpoints"])
    change = []
    if after - before:
        change.append("+" + ", +".join(sorted(after - before)))
    if before - after:
        change.append("-" + ", -".join(sorted(before - after)))
    what = "; ".join(change) or ("reformatted" if result["changed"] else "")
    if not result["changed"]:
        return "ring unchanged: %d endpoint(s) (%s)" % (len(after), ", ".join(result["members"]))
    if check_mode:
        return "would apply (%s mode): %s; %d endpoint(s)" % (result["mode"], what, len(after))
    note = ("; note: ArgoCD self-heal reverts a ConfigMap changed outside git (use gitops"
            " mode where ArgoCD manages the ring)" if result["mode"] == "direct" else "")
    return "applied (%s mode): %s; %d endpoint(s)%s" % (result["mode"], what, len(after), note)


def _checks(result):
    checks = []
    for name in result.get("converge_pods", []):
        values = result.get("reported", {}).get(name, {})
        ok = name not in result.get("lagging", [])
        checks.append(dict(
            name="%s loaded the ring" % name, status="ok" if ok else "fail",
            evidence="thanos_receive_config_hash=%s (want %.0f), file errors=%s" % (
                values.get("thanos_receive_config_hash", values.get("error", "absent")),
                result["expected_hash"],
                values.get("thanos_receive_hashrings_file_errors_total", "absent")),
            hint="" if ok else "its ConfigMap volume is not refreshed yet, or its reload failed:"
                               " read its log"))
    return checks


def apply_ring(client, params, check_mode):
    """Build, validate, apply and prove; returns the result dict (see thanos_hashring)."""
    ns = params["namespace"]
    from kubernetes.client.exceptions import ApiException

    _, pods = kube.statefulset_pods(client, ns, params["statefulset"])
    try:
        cm = kube.core(client).read_namespaced_config_map(params["configmap"], ns)
    except (ApiException, OSError) as exc:
        raise kube.api_error(exc, "read ConfigMap %s/%s" % (ns, params["configmap"])) from exc
    previous_text = (cm.data or {}).get(params["key"], "")
    try:
        previous = json.loads(previous_text) if previous_text else []
    except ValueError:
        previous = []  # replaced wholesale; the diff shows what it was
    ready = [p for p in pods if kube.is_ready(p)]
    by_name = {p.metadata.name: p for p in pods}
    if params.get("members") is not None:
        unknown = [m for m in params["members"] if m not in by_name]
        if unknown:
            raise kube.KubeFailure("members %s are not pods of StatefulSet %s"
                                   % (", ".join(unknown), params["statefulset"]),
                                   "list pods that exist (kubectl get pods)")
        not_ready = [m for m in params["members"] if not kube.is_ready(by_name[m])]
        if not_ready:
            raise kube.KubeFailure("members %s are not Ready: a receiver joins the ring only"
                                   " once Ready" % ", ".join(not_ready),
                                   "wait for them or leave them out")
        members = [by_name[m] for m in params["members"]]
    else:
        members = ready
    if params.get("content"):
        text = params["content"]
        try:
            rings = json.loads(text)
        except ValueError as exc:
            raise kube.KubeFailure("content is not JSON: %s" % exc,
                                   "pass a hashring file") from exc
        endpoints = [hr.endpoint_address(e) for r in rings if isinstance(r, dict)
                     for e in r.get("endpoints") or []]
    else:
        endpoints = [_endpoint(params, p) for p in members]
        rings = hr.with_catch_all_endpoints(previous, endpoints)
        text = hr.render(rings)
    problems = hr.validate(rings, params["replication_factor"], params["grpc_port"])
    expected = hr.config_hash(text.encode())
    result = dict(changed=text != previous_text, ring=rings, previous=previous,
                  previous_text=previous_text, applied=False,
                  members=[p.metadata.name for p in members], expected_hash=expected,
                  endpoints=endpoints, mode=params["mode"],
                  diff=dict(before=previous_text, after=text,
                            before_header="%s/%s" % (params["configmap"], params["key"]),
                            after_header="%s/%s" % (params["configmap"], params["key"])))
    if problems:
        raise kube.KubeFailure("refusing to apply an invalid hashring: " + "; ".join(problems),
                               "fix the ring or the receivers first", problems=problems,
                               ring=rings)
    converge_pods = params.get("converge_pods") or [p.metadata.name for p in ready]
    result["converge_pods"] = converge_pods
    result["msg"] = _summary(result, check_mode)
    if check_mode:
        if params["mode"] == "gitops" and result["changed"]:
            commit_to_git(params, text, check_mode=True)  # proves the path and access
        return result
    baseline = {}
    for name in converge_pods:
        try:
            baseline[name] = receiver_metrics(client, params, name).get(
                "thanos_receive_hashrings_file_errors_total", 0.0)
        except Exception:
            baseline[name] = None
    if result["changed"]:
        if params["mode"] == "direct":
            try:
                kube.core(client).patch_namespaced_config_map(
                    params["configmap"], ns, {"data": {params["key"]: text}})
            except (ApiException, OSError) as exc:
                raise kube.api_error(exc, "patch ConfigMap %s/%s" % (ns, params["configmap"])) \
                    from exc
        else:
            result["commit"] = commit_to_git(params, text, check_mode=False)
            result["sync"] = ask_sync(client, params, result["commit"])
        result["applied"] = True
    if not params["converge"]:
        return result
    reported, lagging, waited, why = converge(client, params, converge_pods, expected,
                                              baseline, text)
    result.update(reported=reported, lagging=lagging, converge_seconds=round(waited, 1))
    result["checks"] = _checks(result)
    if lagging:
        said = ", ".join("%s reports %s" % (n, reported.get(n, {}).get(
            "thanos_receive_config_hash", reported.get(n, {}).get("error", "nothing")))
            for n in lagging)
        raise kube.KubeFailure(
            "no convergence after %.0f s: %s lag (want hash %.0f)%s" % (
                waited, ", ".join(lagging), expected, "; " + why if why else ""),
            "their ConfigMap volume has not been refreshed or their reload failed: " + said,
            **{k: v for k, v in result.items() if k != "msg"})
    result["msg"] += "; proven on %d receiver(s) in %.1f s" % (len(converge_pods), waited)
    return result


