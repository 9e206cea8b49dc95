"""The lab's topology: which component listens where, and the configuration files they read.

Every pod, and every lab host the pods reach (the control plane, S3, the canaries, the
Prometheus server, OpenSearch), gets an address of its own, so receivers use the standard
ports (19291 remote write, 10901 gRPC, 10902 HTTP) exactly as in a cluster. As root each
address lives in a network namespace of its own on the lab's bridge (network.py); without root
each is a loopback address. The /24 is derived from the lab directory, so two labs never share
an address.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

CLUSTERS = ("k8s-cluster-01", "k8s-cluster-02")
RECEIVERS = 3
#: Replicas scale-prometheus may run of the observability cluster's Prometheus server.
PROMETHEUS_REPLICAS = 3
#: Agents per workload cluster scale-agents may make in the lab (addresses .33-.38).
AGENT_SHARDS = 4
REPLICATION_FACTOR = 2
TENANT = "default-tenant"
BLOCKS_BUCKET = "thanos-blocks"
BACKUPS_BUCKET = "watchkeeper-backups"
# Receivers cut a block when the head spans 1.5x this; 2m blocks upload within ~4 minutes.
BLOCK_DURATION = "2m"


@dataclass(frozen=True)
class Addresses:
    """Loopback addresses of one lab."""

    prefix: str  # "127.N.M"

    @classmethod
    def for_lab(cls, lab_dir: Path, routable: bool | None = None) -> Addresses:
        """A /24 of its own for each lab directory. As root (`routable`), from 198.18.0.0/15,
        which then exists only on the lab's bridge and inside its namespaces (network.py; the
        API server's pod proxy refuses 127/8 pod IPs); otherwise from 127/8 (127.0.0.0/16 is
        left to everything else)."""
        digest = hashlib.sha256(str(lab_dir.resolve()).encode()).digest()
        if routable is None:
            routable = os.geteuid() == 0
        if routable:
            return cls(f"198.{18 + digest[0] % 2}.{digest[1]}")
        return cls(f"127.{1 + digest[0] % 254}.{digest[1]}")

    def ip(self, last: int) -> str:
        return f"{self.prefix}.{last}"

    @property
    def apiserver(self) -> str:
        """etcd, kube-apiserver, controller-manager and scheduler (each its own port)."""
        return self.ip(5)

    @property
    def node(self) -> str:
        """The lab node: KWOK's server, the node agent's /healthz and kubelet endpoint. With
        the pod network, the bridge's own address in the host's namespace (the pods'
        gateway, as a node's address is)."""
        return self.ip(6)

    def receiver(self, index: int) -> str:
        return self.ip(11 + index)

    @property
    def query(self) -> str:
        return self.ip(20)

    @property
    def store(self) -> str:
        return self.ip(21)

    def agent(self, index: int) -> str:
        return self.ip(31 + index)

    def agent_shard(self, index: int, shard: int) -> str:
        """Shard `shard` (>= 1) of workload cluster `index`'s agent (scale-agents)."""
        return self.ip(33 + index * (AGENT_SHARDS - 1) + shard - 1)

    def canary(self, index: int) -> str:
        return self.ip(41 + index)

    @property
    def prometheus(self) -> str:
        return self.ip(50)

    def prometheus_replica(self, ordinal: int) -> str:
        """Pod `ordinal` of the observability cluster's Prometheus server StatefulSet
        (`prometheus`, HA replicas: scale-prometheus); .52-.54."""
        return self.ip(52 + ordinal)

    @property
    def alertmanager(self) -> str:
        return self.ip(51)

    @property
    def s3(self) -> str:
        return self.ip(60)

    @property
    def opensearch(self) -> str:
        return self.ip(70)

    @property
    def argocd(self) -> str:
        """ArgoCD's application controller, repo-server and their Redis (each its own port)."""
        return self.ip(80)

    @property
    def charts(self) -> str:
        """The chart repository (index.yaml and the packaged charts, over HTTP)."""
        return self.ip(81)


def hashring(addresses: Addresses, count: int = RECEIVERS) -> list[dict[str, object]]:
    """One catch-all ring over every receiver's gRPC endpoint."""
    return [{
        "hashring": "default",
        "tenants": [],
        "endpoints": [f"{addresses.receiver(i)}:10901" for i in range(count)],
    }]


def objstore_yaml(bucket: str, endpoint: str, access_key: str, secret_key: str) -> str:
    return (
        "type: S3\n"
        "config:\n"
        f"  bucket: {bucket}\n"
        f"  endpoint: {endpoint}\n"
        f"  access_key: {access_key}\n"
        f"  secret_key: {secret_key}\n"
        "  insecure: true\n"
        "  bucket_lookup_type: path\n"
    )


def agent_config(cluster: str, agent: str, canary: str, receiver_url: str,
                 control_plane: tuple[str, ...] = ()) -> str:
    """An agent's prometheus.yml. `control_plane`: more scrape targets (the lab's etcd and
    kwok), so that scale-agents has targets to share out; only their `process_*` and
    `go_goroutines` series are kept, to spare the receivers."""
    extra = ""
    if control_plane:
        targets = ", ".join(f"'{t}'" for t in control_plane)
        extra = (
            "  - job_name: lab-control-plane\n"
            f"    static_configs: [{{targets: [{targets}]}}]\n"
            "    metric_relabel_configs:\n"
            "      - {source_labels: [__name__], regex: 'process_.*|go_goroutines',"
            " action: keep}\n")
    return (
        "global:\n"
        "  scrape_interval: 5s\n"
        f"  external_labels: {{cluster: {cluster}}}\n"
        "scrape_configs:\n"
        "  - job_name: prometheus-agent\n"
        f"    static_configs: [{{targets: ['{agent}:9090']}}]\n"
        "  - job_name: canary\n"
        f"    static_configs: [{{targets: ['{canary}:8080']}}]\n"
        f"{extra}"
        "remote_write:\n"
        f"  - url: {receiver_url}\n"
        "    name: thanos-receive\n"
        "    queue_config: {batch_send_deadline: 2s, max_backoff: 2s}\n"
    )


def agent_control_plane_targets(a: Addresses) -> tuple[str, ...]:
    """The lab's control-plane /metrics every agent scrapes besides itself and its canary:
    etcd's client and metrics ports and kwok (processes no test stops), so that an agent has
    five targets for scale-agents to share out."""
    return (f"{a.apiserver}:2379", f"{a.apiserver}:2381", f"{a.node}:10247")


def prometheus_server_config(addresses: Addresses, receiver_url: str) -> str:
    """prometheus.yml of the observability cluster's Prometheus server StatefulSet. Every
    replica scrapes the same targets and remote-writes to the receivers; `replica` is the pod's
    name (`--enable-feature=expand-external-labels`, POD_NAME from the pod's metadata), the
    label Thanos Query deduplicates HA replicas on."""
    return (
        "global:\n"
        "  scrape_interval: 5s\n"
        "  external_labels: {cluster: observability, replica: '${POD_NAME}'}\n"
        "scrape_configs:\n"
        "  - job_name: alertmanager\n"
        f"    static_configs: [{{targets: ['{addresses.alertmanager}:9093']}}]\n"
        "    metric_relabel_configs:\n"
        "      - {source_labels: [__name__], regex: 'process_.*|go_goroutines', action: keep}\n"
        "  - job_name: thanos-store\n"
        f"    static_configs: [{{targets: ['{addresses.store}:10902']}}]\n"
        "    metric_relabel_configs:\n"
        "      - {source_labels: [__name__], regex: 'process_.*|go_goroutines', action: keep}\n"
        "remote_write:\n"
        f"  - url: {receiver_url}\n"
        "    name: thanos-receive\n"
    )


def prometheus_config(addresses: Addresses, rules: Path) -> str:
    receivers = ", ".join(f"'{addresses.receiver(i)}:10902'" for i in range(RECEIVERS))
    return (
        "global:\n"
        "  scrape_interval: 10s\n"
        "  evaluation_interval: 10s\n"
        "  external_labels: {cluster: observability, replica: prometheus-ha-0}\n"
        f"rule_files: ['{rules}']\n"
        "alerting:\n"
        f"  alertmanagers: [{{static_configs: [{{targets: ['{addresses.alertmanager}:9093']}}]}}]\n"
        "scrape_configs:\n"
        "  - job_name: prometheus\n"
        f"    static_configs: [{{targets: ['{addresses.prometheus}:9090']}}]\n"
        "  - job_name: thanos-receive\n"
        f"    static_configs: [{{targets: [{receivers}]}}]\n"
        "  - job_name: alertmanager\n"
        f"    static_configs: [{{targets: ['{addresses.alertmanager}:9093']}}]\n"
    )


RULES = """groups:
  - name: watchkeeper-lab
    rules:
      - alert: WatchkeeperLabWatchdog
        expr: vector(1)
        labels: {severity: none}
        annotations:
          summary: Always firing, so the lab's Alertmanager has alert history.
"""

ALERTMANAGER = """route:
  receiver: lab-null
  group_wait: 5s
  group_interval: 30s
receivers:
  - name: lab-null
"""
