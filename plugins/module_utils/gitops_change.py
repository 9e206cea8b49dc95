# Copyright: watchkeeper maintainers; Apache-2.0
"""A change to a component in the GitOps repository, planned and validated before it is
committed: a Helm chart's version and values in the Kustomization of an ArgoCD Application's
path (`helmCharts:` entries, inflated by `kubectl kustomize --enable-helm`, as ArgoCD's
repo-server does with `kustomize.buildOptions: --enable-helm`).

The plan shows three things a reviewer wants: the values diff, the rendered-manifest diff
(before -> after, from the repository), and what would change in the live objects (a
server-side `kubectl diff`), and it proves the API server accepts the result (a server-side
dry-run apply) before anything is committed.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import difflib
import os

from ansible_collections.watchkeeper.platform.plugins.module_utils import (
    gitops_sync,
    kube,
    release_notes,
)

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kustomization_file(directory):
    for name in KUSTOMIZATION_NAMES:
        if os.path.exists(os.path.join(directory, name)):
            return name
    raise kube.KubeFailure("%s has no kustomization.yaml" % directory,
                           "upgrade-chart changes a Kustomization with helmCharts")


def chart_entry(kustomization, chart):
    """The `helmCharts` entry named `chart` ('' when the Kustomization has exactly one)."""
    charts = kustomization.get("helmCharts") or []
    names = [c.get("name") for c in charts]
    if not charts:
        raise kube.KubeFailure("the Kustomization has no helmCharts",
                               "this Application is not deployed from a Helm chart")
    if not chart:
        if len(charts) > 1:
            raise kube.KubeFailure("the Kustomization has %d charts (%s)" % (
                len(charts), ", ".join(names)), "name one with -e chart=<name>")
        return charts[0]
    for entry in charts:
        if entry.get("name") == chart:
            return entry
    raise kube.KubeFailure("no chart %r in the Kustomization (it has %s)" % (
        chart, ", ".join(names)), "use one of those names for -e chart")


def merge(base, overlay):
    """`overlay` merged into a copy of `base`, maps recursively (Helm's --set semantics)."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in (overlay or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def unified(before, after, name):
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        "a/" + name, "b/" + name))


def _load(path):
    import yaml

    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _dump(document):
    import yaml

    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)


def edit_chart(directory, chart, version, values):
    """Set the chart's version and merge `values` into its values (its valuesFile when it has
    one, else valuesInline), in place. Returns {files, chart, from_version, to_version,
    values_diff} (files: relative to `directory`)."""
    kfile = kustomization_file(directory)
    kpath = os.path.join(directory, kfile)
    kustomization = _load(kpath)
    entry = chart_entry(kustomization, chart)
    result = {"chart": entry.get("name"), "from_version": str(entry.get("version") or ""),
              "to_version": str(version or entry.get("version") or ""), "files": [],
              "values_diff": ""}
    changed = False
    if version and str(version) != result["from_version"]:
        entry["version"] = str(version)
        changed = True
    if values:
        if entry.get("valuesFile"):
            vpath = os.path.join(directory, entry["valuesFile"])
            before = _load(vpath) if os.path.exists(vpath) else {}
            after = merge(before, values)
            if after != before:
                text = _dump(after)
                result["values_diff"] = unified(_dump(before), text, entry["valuesFile"])
                with open(vpath, "w") as handle:
                    handle.write(text)
                result["files"].append(entry["valuesFile"])
        else:
            before = entry.get("valuesInline") or {}
            after = merge(before, values)
            if after != before:
                result["values_diff"] = unified(_dump(before), _dump(after),
                                                kfile + " valuesInline")
                entry["valuesInline"] = after
                changed = True
    if changed:
        with open(kpath, "w") as handle:
            handle.write(_dump(kustomization))
        result["files"].append(kfile)
    return result


def dry_run(params, rendered):
    """A server-side dry-run apply of the rendered objects: the API server's validation and
    admission, nothing stored."""
    gitops_sync._kubectl(params, ["apply", "--server-side", "--dry-run=server",
                                  "--force-conflicts", "--field-manager=%s" %
                                  gitops_sync.FIELD_MANAGER, "-f", "-"], stdin=rendered)


PROGRAMS = {"thanos": release_notes.THANOS, "prometheus": release_notes.PROMETHEUS}
WORKLOAD_KINDS = ("StatefulSet", "Deployment", "DaemonSet")


def containers(docs):
    """{(kind/name, container): (image, args)} of the workloads among rendered objects."""
    found = {}
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in spec.get("containers") or []:
            key = ("%s/%s" % (doc["kind"], doc["metadata"]["name"]), c.get("name"))
            found[key] = (c.get("image") or "", list(c.get("args") or []))
    return found


def program_of(image):
    """('thanos', 'v0.40.1') for quay.io/thanos/thanos:v0.40.1; (None, None) for others."""
    repository, _, tag = image.rpartition(":")
    name = repository.rsplit("/", 1)[-1]
    return (name, tag) if name in PROGRAMS and tag else (None, None)


def _rings(docs):
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            for key, text in ((doc.get("data") or {}).items()):
                if key.endswith("hashrings.json"):
                    import json

                    try:
                        return json.loads(text)
                    except ValueError:
                        return None
    return None


def _flag(args, name, default):
    for arg in args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def version_notes(before_docs, after_docs):
    """The release notes' breaking changes each workload's program crosses (Thanos,
    Prometheus, found by image), each with the problems its check finds in the new objects;
    and the workloads that would go to an older version."""
    before, after = containers(before_docs), containers(after_docs)
    notes, downgrades = [], []
    for key, (image, args) in sorted(after.items()):
        if key not in before:
            continue
        program, new = program_of(image)
        old_program, old = program_of(before[key][0])
        if program is None or program != old_program or old == new:
            continue
        try:
            if release_notes.parse(new) < release_notes.parse(old):
                downgrades.append("%s %s: %s -> %s" % (key[0], program, old, new))
                continue
            crossed = release_notes.between(PROGRAMS[program], old, new)
        except ValueError:
            continue
        for note in crossed:
            problems = []
            if note.get("check") == "ketama_endpoints":
                problems = release_notes.ketama_endpoints(
                    _rings(after_docs) or [], _flag(args, "--receive.replication-factor", 1))
            elif note.get("check") == "agent_flag":
                problems = release_notes.agent_flag(before[key][1], args)
            elif note.get("check") == "removed_flags":
                problems = release_notes.removed_flags(before[key][1], args)
            notes.append({"workload": key[0], "program": program, "from": old, "to": new,
                          "id": note["id"], "since": note["since"], "change": note["change"],
                          "problems": problems})
    return notes, downgrades


def plan(params, app, directory, edit):
    """Render the Application's path before and after `edit(directory)`; check the release
    notes' breaking changes the version change crosses (refusing what their checks find, and
    a downgrade unless params allow_downgrade); validate the result against the cluster;
    return the edit's result with notes, rendered_diff, live_diff and objects (the live
    objects that would change)."""
    import yaml

    method = params.get("tracking_method") or "annotation"
    before = gitops_sync.track(gitops_sync.render(params, directory), app, method)
    result = edit(directory)
    after = gitops_sync.track(gitops_sync.render(params, directory), app, method)
    result["rendered_diff"] = unified(before, after, "rendered")
    notes, downgrades = version_notes([d for d in yaml.safe_load_all(before) if d],
                                      [d for d in yaml.safe_load_all(after) if d])
    result["notes"], result["downgrades"] = notes, downgrades
    result["images"] = {k[0]: image for k, (image, _) in containers(
        [d for d in yaml.safe_load_all(after) if d]).items()}
    refused = ["%s %s (since %s: %s)" % (n["program"], "; ".join(n["problems"]), n["since"],
                                         n["id"]) for n in notes if n["problems"]]
    if refused:
        raise kube.KubeFailure("refused by the release notes: " + " | ".join(refused),
                               "fix the values (or the chart) so the new version gets what"
                               " it needs, then run again; nothing was committed",
                               notes=notes)
    if downgrades and not params.get("allow_downgrade"):
        raise kube.KubeFailure("a downgrade: " + "; ".join(downgrades),
                               "run with -e allow_downgrade=true if that is meant (an older"
                               " version may not read what the newer one wrote)")
    dry_run(params, after)
    live = gitops_sync.drift(params, after)
    result["live_diff"] = live
    result["objects"] = gitops_sync.changed_objects(live)
    return result
