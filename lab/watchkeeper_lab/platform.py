"""The platform's Kubernetes objects, as the lab's GitOps repository holds them.

Thanos Receive, Query, Store and the Prometheus Agents are Helm charts of our own (charts/,
served by the lab's chart repository); `clusters/<cluster>/<component>/` inflates the chart at
a version with that cluster's values (Kustomize `helmCharts:`) and patches what differs in the
lab: pod addresses instead of DNS (the lab has no cluster DNS or kube-proxy; the node agent
gives each pod the IP in `lab.watchkeeper.io/ip`). The chart values carry the rest (2-minute
blocks so uploads come within minutes). Alertmanager and the Prometheus server are plain
Kustomize bases (`base/<component>/`, as production deploys them) with the same kind of
overlay. `argocd/` holds the Application CRD and one Application per component and cluster.
ArgoCD syncs the tree (its repo-server renders with `--enable-helm`); until ArgoCD is built,
`lab up` renders it with `kubectl kustomize --enable-helm` and applies it.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from watchkeeper_lab import topology
from watchkeeper_lab.topology import Addresses

OBSERVABILITY = "observability"
NAMESPACES = {OBSERVABILITY: "monitoring", **{c: c for c in topology.CLUSTERS}}
#: Receivers the lab can scale to: their addresses (.11 + ordinal) and volumes are reserved.
MAX_RECEIVERS = 6
THANOS_IMAGE = "quay.io/thanos/thanos:v0.40.1"
PROMETHEUS_IMAGE = "quay.io/prometheus/prometheus:v2.42.0"
ALERTMANAGER_IMAGE = "quay.io/prometheus/alertmanager:v0.25.0"
IMAGES = {"thanos": THANOS_IMAGE, "prometheus": PROMETHEUS_IMAGE,
          "alertmanager": ALERTMANAGER_IMAGE}
IP_ANNOTATION = "lab.watchkeeper.io/ip"
#: The chart version of each charted component the lab's clusters run (charts/versions.json
#: lists every version the chart repository serves).
CHART_VERSIONS = {"thanos-receive": "1.1.0", "thanos-query": "1.1.0", "thanos-store": "1.1.0",
                  "prometheus-agent": "1.0.0"}
RECEIVE_LABELS = {"app.kubernetes.io/name": "thanos-receive",
                  "app.kubernetes.io/component": "receive"}


def _dump(*docs: dict[str, Any]) -> str:
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _kustomization(resources: list[str], namespace: str | None = None,
                   patches: list[str] | None = None) -> str:
    doc: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1",
                           "kind": "Kustomization"}
    if namespace:
        doc["namespace"] = namespace
    doc["resources"] = resources
    if patches:
        doc["patches"] = [{"path": p} for p in patches]
    return yaml.safe_dump(doc, sort_keys=False)


def _env() -> list[dict[str, Any]]:
    def field(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    return [field("NAME", "metadata.name"), field("NAMESPACE", "metadata.namespace"),
            field("POD_IP", "status.podIP")]


def _probe(port: str) -> dict[str, Any]:
    return {"httpGet": {"path": "/-/ready", "port": port}, "periodSeconds": 5}


def _liveness(port: str, period: int = 30, failures: int = 8) -> dict[str, Any]:
    """/-/healthy; generous by default (a receiver replaying a large WAL is slow to start).

    The probe's own terminationGracePeriodSeconds (Kubernetes 1.27+): a process that failed
    liveness for minutes is hung, and a hung Thanos can ignore SIGTERM; without it the kubelet
    would wait out the pod's 900 s shutdown grace (meant for a healthy receiver's flush and
    upload) before the restart."""
    return {"httpGet": {"path": "/-/healthy", "port": port}, "periodSeconds": period,
            "failureThreshold": failures, "terminationGracePeriodSeconds": 60}


def _ports(**ports: int) -> list[dict[str, Any]]:
    return [{"name": name.replace("_", "-"), "containerPort": port}
            for name, port in ports.items()]


def _claim(name: str = "data") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}


def _statefulset(name: str, labels: dict[str, str], container: dict[str, Any],
                 volumes: list[dict[str, Any]], replicas: int = 1, grace: int = 120,
                 claim: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": name, "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "serviceAccountName": "default", "terminationGracePeriodSeconds": grace,
            "containers": [container], "volumes": volumes}},
    }
    if claim:
        spec["volumeClaimTemplates"] = [_claim()]
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain",
                                                        "whenScaled": "Retain"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": spec}


def _service(name: str, labels: dict[str, str], ports: dict[str, int],
             headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": labels, "ports": [
        {"name": n.replace("_", "-"), "port": p, "targetPort": p} for n, p in ports.items()]}
    if headless:
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


# ---------------------------------------------------------------------------- receive
RECEIVE_PORTS = {"grpc": 10901, "http": 10902, "remote_write": 19291}


def hashring_configmap(ring: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "thanos-receive-hashring"},
            "data": {"hashrings.json": json.dumps(ring, indent=2) + "\n"}}


# ---------------------------------------------------------------------------- the others
def _alertmanager_base() -> dict[str, str]:
    labels = {"app.kubernetes.io/name": "alertmanager"}
    container = {
        "name": "alertmanager", "image": ALERTMANAGER_IMAGE,
        "args": ["--config.file=/etc/alertmanager/alertmanager.yml",
                 "--storage.path=/alertmanager", "--web.listen-address=0.0.0.0:9093",
                 "--cluster.listen-address="],
        "ports": _ports(http=9093), "readinessProbe": _probe("http"),
        "volumeMounts": [{"name": "data", "mountPath": "/alertmanager"},
                         {"name": "config", "mountPath": "/etc/alertmanager"}],
    }
    volumes = [{"name": "config", "configMap": {"name": "alertmanager-config"}}]
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "alertmanager-config"},
              "data": {"alertmanager.yml": topology.ALERTMANAGER}}
    return {"kustomization.yaml": _kustomization(["statefulset.yaml", "service.yaml",
                                                  "configmap.yaml"]),
            "statefulset.yaml": _dump(_statefulset("alertmanager", labels, container, volumes)),
            "service.yaml": _dump(_service("alertmanager", labels, {"http": 9093})),
            "configmap.yaml": _dump(config)}


def _prometheus_base() -> dict[str, str]:
    """A full Prometheus server (the platform's own monitoring) as a StatefulSet whose
    replicas are an HA set: each pod's `replica` external label is its name (POD_NAME from
    the downward API, expanded by --enable-feature=expand-external-labels)."""
    labels = {"app.kubernetes.io/name": "prometheus"}
    container = {
        "name": "prometheus", "image": PROMETHEUS_IMAGE,
        "args": ["--config.file=/etc/prometheus/prometheus.yml",
                 "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=6h",
                 "--enable-feature=expand-external-labels",
                 "--web.listen-address=0.0.0.0:9090"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": _ports(http=9090), "readinessProbe": _probe("http"),
        "volumeMounts": [{"name": "data", "mountPath": "/prometheus"},
                         {"name": "config", "mountPath": "/etc/prometheus"}],
    }
    volumes = [{"name": "config", "configMap": {"name": "prometheus-config"}}]
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prometheus-config"},
              "data": {"prometheus.yml": "# set per cluster by its overlay\n"}}
    return {"kustomization.yaml": _kustomization(["statefulset.yaml", "service.yaml",
                                                  "configmap.yaml"]),
            "statefulset.yaml": _dump(_statefulset("prometheus", labels, container, volumes,
                                                   grace=120)),
            "service.yaml": _dump(_service("prometheus", labels, {"http": 9090})),
            "configmap.yaml": _dump(config)}


# What the runbooks need in the platform's namespace, and nothing more: read pods, their
# proxied metrics and logs, restart pods, scale the receivers, patch the hashring, hold the
# per-cluster Lease. Never secrets, never a workload's deletion, never another namespace.
WATCHKEEPER_RBAC = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: watchkeeper
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: watchkeeper
rules:
  - apiGroups: [""]
    resources: [pods, services, endpoints, persistentvolumeclaims, events]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [pods/proxy, pods/log]
    verbs: [get]
  # restart-agent and receiver-down restart a pod by deleting it (its controller recreates
  # it); scale-receivers with release_pvcs deletes a removed receiver's claim once its final
  # block is verified in the bucket.
  - apiGroups: [""]
    resources: [pods, persistentvolumeclaims]
    verbs: [delete]
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch, patch, update]
  - apiGroups: [apps]
    resources: [statefulsets, deployments]
    verbs: [get, list, watch, patch]
  - apiGroups: [apps]
    resources: [statefulsets/scale, deployments/scale]
    verbs: [get, patch, update]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: watchkeeper
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: watchkeeper
subjects:
  - kind: ServiceAccount
    name: watchkeeper
"""


# ---------------------------------------------------------------------------- lab patches
def _ip_patch(kind: str, name: str, ip: str, extra_spec: dict[str, Any] | None = None,
              container: dict[str, Any] | None = None) -> str:
    template: dict[str, Any] = {"metadata": {"annotations": {IP_ANNOTATION: ip}}}
    if container:
        template["spec"] = {"containers": [container]}
    spec: dict[str, Any] = {**(extra_spec or {}), "template": template}
    return _dump({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
                  "spec": spec})


def _overlay(namespace: str, component: str, patches: dict[str, str]) -> dict[str, str]:
    files = {"kustomization.yaml": _kustomization([f"../../../base/{component}"], namespace,
                                                  sorted(patches))}
    files.update(patches)
    return files


def _charted_overlay(namespace: str, component: str, values: dict[str, Any],
                     patches: dict[str, str], chart_repo: str) -> dict[str, str]:
    """A component from our chart: Kustomize inflates it (helmCharts, rendered with
    `--enable-helm`, as ArgoCD's repo-server is configured to) with this cluster's values,
    then applies the patches."""
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": namespace,
        "helmCharts": [{"name": component, "repo": chart_repo,
                        "version": CHART_VERSIONS[component], "releaseName": component,
                        "namespace": namespace, "valuesFile": "values.yaml"}],
    }
    if patches:
        doc["patches"] = [{"path": name} for name in sorted(patches)]
    files = {"kustomization.yaml": yaml.safe_dump(doc, sort_keys=False),
             "values.yaml": "# This cluster's values for the chart (defaults: the chart's"
                            " values.yaml).\n" + (yaml.safe_dump(values, sort_keys=False)
                                                  if values else "{}\n")}
    files.update(patches)
    return files


def tree(a: Addresses, repo_url: str, chart_repo: str) -> dict[str, str]:
    """path -> content of the lab's GitOps repository, whose URL ArgoCD clones is
    `repo_url`; the charts come from the chart repository at `chart_repo`."""
    files: dict[str, str] = {
        "README.md": (
            "# monitoring platform (GitOps source of the watchkeeper lab)\n\n"
            "- `clusters/<cluster>/<component>`: what ArgoCD syncs into that cluster (the lab's"
            " clusters are namespaces of one API server; the patches carry the lab's pod"
            " addresses). Thanos Receive, Query, Store and the Prometheus Agents come from"
            " our Helm charts (`helmCharts:` in the kustomization: chart, version,"
            " `values.yaml`); render with `kustomize build --enable-helm`.\n"
            "- `base/<component>`: the components without a chart, as production deploys"
            " them.\n- `argocd/`: the Application CRD and one Application per"
            " component.\n"),
        # Kustomize pulls each chart into charts/ beside its kustomization: not source.
        ".gitignore": "charts/\n",
    }
    bases = {"alertmanager": _alertmanager_base(), "prometheus": _prometheus_base(),
             "watchkeeper": {"kustomization.yaml": _kustomization(["rbac.yaml"]),
                             "rbac.yaml": WATCHKEEPER_RBAC}}
    for component, content in bases.items():
        for name, text in content.items():
            files[f"base/{component}/{name}"] = text

    receivers = range(MAX_RECEIVERS)
    # The charted components: the chart at a version with this cluster's values, and the lab's
    # patches (pod addresses, the lab's ring).
    charted: dict[tuple[str, str], tuple[dict[str, Any], dict[str, str]]] = {
        (OBSERVABILITY, "thanos-receive"): ({
            "replicas": topology.RECEIVERS,
            "replicationFactor": topology.REPLICATION_FACTOR,
            "localEndpoint": "$(POD_IP):10901",
            "retention": "6h",
            # Short blocks so uploads come within minutes (hidden flags, keep them equal).
            "extraArgs": ["--receive.hashrings-file-refresh-interval=15s",
                          f"--tsdb.min-block-duration={topology.BLOCK_DURATION}",
                          f"--tsdb.max-block-duration={topology.BLOCK_DURATION}"],
            # The lab's receivers start in seconds: a stuck one is restarted within 20 s.
            "livenessProbe": {"periodSeconds": 5, "failureThreshold": 4},
        }, {
            "lab-addresses.yaml": _ip_patch("StatefulSet", "thanos-receive", a.receiver(0)),
            "lab-hashring.yaml": _dump(hashring_configmap(topology.hashring(a))),
        }),
        (OBSERVABILITY, "thanos-query"): ({
            "endpoints": [*[f"{a.receiver(i)}:10901" for i in receivers], f"{a.store}:10901"],
        }, {
            # One address for the Deployment's pod: the old pod goes before the new one.
            "lab-addresses.yaml": _ip_patch(
                "Deployment", "thanos-query", a.query,
                extra_spec={"strategy": {"type": "Recreate", "rollingUpdate": None}}),
        }),
        (OBSERVABILITY, "thanos-store"): ({}, {
            "lab-addresses.yaml": _ip_patch("StatefulSet", "thanos-store", a.store)}),
    }
    for i, cluster in enumerate(topology.CLUSTERS):
        receiver = f"http://{a.receiver(i % topology.RECEIVERS)}:19291/api/v1/receive"
        config = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "prometheus-agent-config"},
                  "data": {"prometheus.yml": topology.agent_config(
                      cluster, a.agent(i), a.canary(i), receiver,
                      topology.agent_control_plane_targets(a))}}
        charted[(cluster, "prometheus-agent")] = ({}, {
            "lab-addresses.yaml": _ip_patch("StatefulSet", "prometheus-agent", a.agent(i)),
            "lab-config.yaml": _dump(config)})
    overlays: dict[tuple[str, str], dict[str, str]] = {
        (OBSERVABILITY, "alertmanager"): {
            "lab-addresses.yaml": _ip_patch("StatefulSet", "alertmanager", a.alertmanager)},
        (OBSERVABILITY, "prometheus"): {
            "lab-addresses.yaml": _ip_patch("StatefulSet", "prometheus",
                                            a.prometheus_replica(0)),
            "lab-config.yaml": _dump({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "prometheus-config"},
                "data": {"prometheus.yml": topology.prometheus_server_config(
                    a, f"http://{a.receiver(topology.RECEIVERS - 1)}:19291/api/v1/receive")}})},
        (OBSERVABILITY, "watchkeeper"): {},
    }
    for cluster in topology.CLUSTERS:
        overlays[(cluster, "watchkeeper")] = {}
    for (cluster, component), (values, patches) in charted.items():
        namespace = NAMESPACES[cluster]
        files.update({f"clusters/{cluster}/{component}/{name}": text for name, text in
                      _charted_overlay(namespace, component, values, patches,
                                       chart_repo).items()})
    for (cluster, component), patches in overlays.items():
        namespace = NAMESPACES[cluster]
        for name, text in _overlay(namespace, component, patches).items():
            files[f"clusters/{cluster}/{component}/{name}"] = text
    components = sorted([*overlays, *charted])
    applications = [_application(cluster, component, NAMESPACES[cluster], repo_url)
                    for cluster, component in components]
    for cluster in NAMESPACES:
        files[f"clusters/{cluster}/kustomization.yaml"] = _kustomization(
            sorted(c for (cl, c) in components if cl == cluster))
    files["argocd/crd/kustomization.yaml"] = _kustomization(["application-crd.yaml"])
    files["argocd/crd/application-crd.yaml"] = _dump(APPLICATION_CRD)
    files["argocd/applications/kustomization.yaml"] = _kustomization(["applications.yaml"],
                                                                     "argocd")
    files["argocd/applications/applications.yaml"] = _dump(*applications)
    return files


def _application(cluster: str, component: str, namespace: str,
                 repo_url: str) -> dict[str, Any]:
    """One component of one cluster. The lab's clusters are namespaces of one API server: the
    destination is ArgoCD's in-cluster server and the cluster's namespace. Automated sync
    applies each new commit (prune: what git drops goes); no self-heal, so that a runbook's
    direct change (scale, ring) stays until the next commit, as with many teams' settings."""
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": f"{cluster}-{component}",
                     "labels": {"watchkeeper.io/cluster": cluster,
                                "watchkeeper.io/component": component}},
        "spec": {"project": "default",
                 "source": {"repoURL": repo_url, "targetRevision": "main",
                            "path": f"clusters/{cluster}/{component}"},
                 "destination": {"server": "https://kubernetes.default.svc",
                                 "namespace": namespace},
                 # Server-side apply, as watchkeeper's own re-sync does (field manager
                 # argocd-controller): objects the lab applied first change hands cleanly.
                 "syncPolicy": {"automated": {"prune": True, "selfHeal": False},
                                "syncOptions": ["ServerSideApply=true"]}},
    }


# A minimal structural schema for argoproj.io Applications: enough for the API server to store
# and validate the objects the runbooks read (spec.source, spec.destination, status.sync /
# status.health). Written for the lab after the field names of Argo CD's Application type.
APPLICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io", "scope": "Namespaced",
        "names": {"kind": "Application", "listKind": "ApplicationList", "plural": "applications",
                  "singular": "application", "shortNames": ["app", "apps"]},
        "versions": [{
            "name": "v1alpha1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [
                {"name": "Sync Status", "type": "string", "jsonPath": ".status.sync.status"},
                {"name": "Health Status", "type": "string",
                 "jsonPath": ".status.health.status"}],
            "schema": {"openAPIV3Schema": {
                "type": "object", "required": ["metadata", "spec"],
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": {"type": "object", "required": ["destination", "project"],
                             "x-kubernetes-preserve-unknown-fields": True,
                             "properties": {
                                 "project": {"type": "string"},
                                 "source": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True},
                                 "destination": {"type": "object",
                                                 "properties": {
                                                     "server": {"type": "string"},
                                                     "name": {"type": "string"},
                                                     "namespace": {"type": "string"}}}}},
                    # A requested sync (`argocd app sync`, watchkeeper's re-sync in argocd
                    # mode) is written here; ArgoCD's controller runs it.
                    "operation": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }},
        }],
    },
}


def persistent_volumes(root: str) -> list[dict[str, Any]]:
    """Pre-provisioned hostPath volumes, pre-bound to the claims the StatefulSets make (the
    lab has no storage provisioner; Retain, so a scale-down never loses a receiver's data)."""
    claims = [("monitoring", f"data-thanos-receive-{i}") for i in range(MAX_RECEIVERS)]
    claims += [("monitoring", "data-thanos-store-0"), ("monitoring", "data-alertmanager-0")]
    claims += [("monitoring", f"data-prometheus-{i}") for i in range(topology.PROMETHEUS_REPLICAS)]
    claims += [(c, "data-prometheus-agent-0") for c in topology.CLUSTERS]
    # scale-agents' shards 1..AGENT_SHARDS-1 (StatefulSets prometheus-agent-shard-N).
    claims += [(c, f"data-prometheus-agent-shard-{s}-0") for c in topology.CLUSTERS
               for s in range(1, topology.AGENT_SHARDS)]
    return [{
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"lab-{ns}-{claim}", "labels": {"lab.watchkeeper.io/pv": "true"}},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                 "hostPath": {"path": f"{root}/{ns}/{claim}", "type": "DirectoryOrCreate"},
                 "claimRef": {"namespace": ns, "name": claim}},
    } for ns, claim in claims]
