"""The lab's own inventory, in the production schema (docs/inventory.md).

Hosts: the two workload clusters (an agent each) and `observability` (receivers, query, store,
Prometheus HA replica, Alertmanager, OpenSearch, S3, git). Secrets are references to the lab's
environment (`watchkeeper lab env`), never values.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from watchkeeper_lab import build, topology
from watchkeeper_lab.platform import NAMESPACES, OBSERVABILITY
from watchkeeper_lab.topology import Addresses


def write_lab_inventory(directory: Path, a: Addresses, versions: dict[str, str],
                        git_url: str, kubeconfig: Path | None = None,
                        lab_dir: Path | None = None, kubectl: Path | None = None,
                        argocd: bool = False) -> Path:
    receivers_http = [f"http://{a.receiver(i)}:10902" for i in range(topology.RECEIVERS)]
    receivers_grpc = [f"{a.receiver(i)}:10901" for i in range(topology.RECEIVERS)]
    common = {
        "ansible_connection": "local",
        "wk_environment": "lab",
        "wk_region": "loopback",
        "wk_query_url": f"http://{a.query}:10902",
        "wk_receive_http_urls": receivers_http,
        "wk_s3_endpoint": f"http://{a.s3}:9000",
        "wk_s3_region": "us-east-1",
        "wk_s3_bucket_blocks": topology.BLOCKS_BUCKET,
        "wk_s3_bucket_backups": topology.BACKUPS_BUCKET,
        "wk_s3_access_key": {"env": "WATCHKEEPER_LAB_S3_ACCESS_KEY"},
        "wk_s3_secret_key": {"env": "WATCHKEEPER_LAB_S3_SECRET_KEY"},
        "wk_versions": {k: versions[k] for k in sorted(versions)},
        # Short lab windows: a stalled queue shows within a minute.
        "wk_threshold_remote_write_lag_seconds": 60,
        # No cAdvisor in the lab: the agents' own process metrics (they scrape themselves).
        "wk_usage_memory_query":
            'process_resident_memory_bytes{cluster="{cluster}",job="{name}"}',
        "wk_usage_cpu_query":
            'rate(process_cpu_seconds_total{cluster="{cluster}",job="{name}"}[1m])',
        # The DR drills' objectives on the lab: minutes, not a production day.
        "wk_dr_rto_target": "5m",
        "wk_dr_rpo_target": "24h",
        # verify-backups starts these where watchkeeper runs, on restored backups: the lab's
        # Thanos build and Debian's Prometheus (both built or found by `lab up` already).
        "wk_thanos_binary": str(build.ensure(build.load_specs()["thanos"], lambda line: None)),
        "wk_prometheus_binary": str(build.ensure(build.load_specs()["prometheus"],
                                                 lambda line: None)),
        # Renders the GitOps repository's Kustomizations that inflate the platform's charts.
        "wk_helm": str(build.ensure(build.load_specs()["helm"], lambda line: None)),
    }
    if kubeconfig is not None:
        common["wk_kubeconfig"] = str(kubeconfig)
    if kubectl:  # renders and diffs the GitOps paths (re-sync, upgrade-chart): the lab's kubectl
        common["wk_kubectl"] = str(kubectl)
    hosts: dict[str, dict[str, object]] = {}
    for i, cluster in enumerate(topology.CLUSTERS):
        receiver = a.receiver(i % topology.RECEIVERS)
        hosts[cluster] = {
            "wk_role": "workload",
            # One API server, a namespace per cluster (controlplane.py says why).
            "wk_kube_context": cluster,
            "wk_namespace": NAMESPACES[cluster],
            "wk_agent_url": f"http://{a.agent(i)}:9090",
            "wk_receive_remote_write_url": f"http://{receiver}:19291/api/v1/receive",
            # No wk_agent_log_path: agent-health reads the agent's log through pods/log, as in
            # production (the node agent serves the kubelet's /containerLogs).
            # Drift from git is re-synced by asking ArgoCD for a sync; until ArgoCD is built
            # (the first `up` on a fresh machine), by server-side apply of the rendered path.
            "wk_agent_application": f"{cluster}-prometheus-agent",
            # scale-agents: each shard's pod address (the node agent binds pods to them).
            "wk_agent_shard_pod_annotations": {
                str(s): {"lab.watchkeeper.io/ip": a.agent_shard(i, s)}
                for s in range(1, topology.AGENT_SHARDS)},
            "wk_resync_mode": "argocd" if argocd else "apply",
            "wk_git_url": git_url,
            # The agents scrape themselves and their canary (diagnose-missing-metrics).
            "wk_expected_jobs": ["prometheus-agent", "canary"],
        }
    hosts["observability"] = {
        "wk_role": "observability",
        "wk_kube_context": OBSERVABILITY,
        "wk_namespace": NAMESPACES[OBSERVABILITY],
        "wk_receive_grpc_endpoints": receivers_grpc,
        "wk_store_url": f"http://{a.store}:10902",
        "wk_alertmanager_url": f"http://{a.alertmanager}:9093",
        "wk_prometheus_url": f"http://{a.prometheus}:9090",
        **({"wk_prometheus_tsdb_path": str(lab_dir / "data" / "prometheus")} if lab_dir else {}),
        "wk_opensearch_url": f"http://{a.opensearch}:9200",
        "wk_git_url": git_url,
        # No cluster DNS in the lab: ring members are pod IPs (the node agent keeps them stable
        # per ordinal, as a StatefulSet's DNS names are).
        "wk_receive_endpoint_template": "{ip}:{port}",
        "wk_canary_query": "watchkeeper_lab_canary_total",
        "wk_hashring_git_path": "clusters/observability/thanos-receive/lab-hashring.yaml",
        # GitOps-mode scaling commits the receivers' replicas to this Kustomization.
        "wk_receive_replicas_git_path": "clusters/observability/thanos-receive/"
                                        "kustomization.yaml",
        # The platform's own Prometheus server (HA replicas: scale-prometheus).
        "wk_prometheus_statefulset": "prometheus",
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "group_vars").mkdir(exist_ok=True)
    (directory / "host_vars").mkdir(exist_ok=True)
    (directory / "hosts.yml").write_text(
        "# Written by `watchkeeper lab up`; regenerated on every up.\n"
        + yaml.safe_dump({"all": {"children": {"lab": {"hosts": {h: {} for h in hosts}}}}},
                         sort_keys=False))
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(common, sort_keys=False))
    for host, values in hosts.items():
        (directory / "host_vars" / f"{host}.yml").write_text(
            yaml.safe_dump(values, sort_keys=False))
    return directory
