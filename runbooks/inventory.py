"""The inventory: load an Ansible YAML inventory, resolve each cluster's variables, validate them.

One host per cluster. Only flat `wk_*` variables belong to watchkeeper (see docs/inventory.md for
why they are flat). Validation reports every problem at once, each with the file it came from,
so an operator fixes the inventory in one pass.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from runbooks.errors import InventoryError, Problem, SecretError

PREFIX = "wk_"
#: Seconds a runbook waits for new or restarted pods to be Ready (the ready_timeout param of
#: the runbooks that change workloads); their playbooks and modules take it from the params.
READY_TIMEOUT = 300.0


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret: an environment variable, or an Ansible Vault value.

    The value itself never lives in the inventory, the journal or a report.
    """

    kind: Literal["env", "vault"]
    name: str = ""  # the variable name for `env`
    vaulted: Any = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return f"{{env: {self.name}}}" if self.kind == "env" else "!vault"

    def resolve(self, environ: Mapping[str, str] | None = None) -> str:
        """The secret's value. Raises SecretError naming what to set."""
        if self.kind == "env":
            env = os.environ if environ is None else environ
            value = env.get(self.name)
            if not value:
                raise SecretError(
                    f"secret reference {{env: {self.name}}} is not set: export {self.name}"
                    " in the environment of watchkeeper"
                )
            return value
        try:
            return str(self.vaulted)
        except Exception as exc:  # ansible raises its own vault errors here
            raise SecretError(
                "an Ansible Vault secret could not be decrypted: pass --vault-password-file"
                " or set ANSIBLE_VAULT_PASSWORD_FILE"
            ) from exc


def _is_vaulted(value: Any) -> bool:
    # ansible-core 2.18 has AnsibleVaultEncryptedUnicode, 2.19 has EncryptedString.
    name = type(value).__name__
    return "Vault" in name or "Encrypted" in name


def _to_secret(value: Any) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if _is_vaulted(value):
        return SecretRef(kind="vault", vaulted=value)
    if isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
        return SecretRef(kind="env", name=value["env"])
    if isinstance(value, str):
        raise ValueError(
            "a secret reference ({env: VAR_NAME} or an Ansible Vault value), never a"
            " plain-text secret"
        )
    raise ValueError("a secret reference: {env: VAR_NAME} or an Ansible Vault value (!vault)")


Secret = Annotated[SecretRef, BeforeValidator(_to_secret)]


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a URL string such as http://host:port")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL such as http://host:port")
    if parts.password is not None:
        # A password in a URL is a plain-text secret that would end up in every report.
        raise ValueError("a URL without credentials; put them in the matching wk_*_auth"
                         " with a secret reference")
    return value.rstrip("/")


def _check_hostport(value: Any) -> str:
    if not isinstance(value, str) or ":" not in value or "/" in value:
        raise ValueError("host:port, e.g. thanos-receive-0.thanos-receive:10901")
    port = value.rsplit(":", 1)[1]
    if not port.isdigit():
        raise ValueError("host:port with a numeric port")
    return value


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds from 90, '90s', '15m', '24h', '7d' or '1w' (a bare number is seconds)."""
    import re

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", str(value))
        if not found:
            raise ValueError(f"a duration such as 90s, 15m, 24h or 7d, not {value!r}")
        seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"a duration above zero, not {value!r}")
    return seconds


Url = Annotated[str, BeforeValidator(_check_url)]
HostPort = Annotated[str, BeforeValidator(_check_hostport)]
#: A duration in seconds, written 90s, 15m, 24h, 7d (or a number of seconds).
Duration = Annotated[float, BeforeValidator(parse_duration)]


class BasicAuth(BaseModel):
    """Basic auth for an HTTP endpoint; the password is a secret reference."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    username: str
    password: Secret


# --------------------------------------------------------------------------- schema


class ClusterConfig(BaseModel):
    """The validated, resolved watchkeeper view of one cluster (one inventory host)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="inventory host name")
    cluster: str = Field("", description="value of the `cluster` external label")
    environment: str = "production"
    region: str = ""
    role: Literal["workload", "observability"] = "workload"
    kube_context: str = ""
    kubeconfig: str = ""
    namespace: str = "monitoring"
    agent_url: Url | None = None
    agent_auth: BasicAuth | None = None
    # Where agent-health reads the agent's log (fields {namespace}, {pod}); empty: the pod log
    # through the Kubernetes API (agent-health, restart-agent).
    agent_log_path: str = ""
    receive_remote_write_url: Url | None = None
    receive_http_urls: tuple[Url, ...] = ()
    receive_grpc_endpoints: tuple[HostPort, ...] = ()
    query_url: Url | None = None
    store_url: Url | None = None
    alertmanager_url: Url | None = None
    grafana_url: Url | None = None
    prometheus_url: Url | None = None
    prometheus_tsdb_path: str = ""
    opensearch_url: Url | None = None
    opensearch_auth: BasicAuth | None = None
    s3_endpoint: Url | None = None
    s3_region: str = "us-east-1"
    s3_bucket_blocks: str = ""
    s3_bucket_backups: str = ""
    s3_access_key: Secret | None = None
    s3_secret_key: Secret | None = None
    git_url: str = ""
    # Thanos Receive as deployed (the hashring and scale-receivers runbooks).
    receive_statefulset: str = "thanos-receive"
    receive_service: str = "thanos-receive"
    receive_replication_factor: int = Field(2, ge=1)
    receive_endpoint_template: str = "{pod}.{service}.{namespace}.svc.cluster.local:{port}"
    hashring_configmap: str = "thanos-receive-hashring"
    hashring_mode: Literal["direct", "gitops"] = "direct"
    hashring_git_path: str = ""
    receive_replicas_git_path: str = ""
    # A series every workload cluster writes continuously: a change is proven by new samples
    # of it in Query (`up` of the agents works anywhere; the lab has a dedicated canary).
    canary_query: str = "up"
    # Usage queries for tune-resources (fields {namespace} {name} {container} {cluster});
    # empty: cAdvisor's container_memory_working_set_bytes / container_cpu_usage_seconds_total.
    usage_memory_query: str = ""
    usage_cpu_query: str = ""
    versions: dict[str, str] = Field(default_factory=dict)
    threshold_remote_write_lag_seconds: float = Field(120.0, gt=0)
    # Mean seconds per remote-write request above which diagnose-remote-write calls a queue
    # slow (a slow link or slow receivers; a healthy lab agent's requests take milliseconds).
    threshold_remote_write_send_seconds: float = Field(1.0, gt=0)
    threshold_failed_ratio: float = Field(0.01, ge=0, le=1)
    threshold_pending_samples: int = Field(100_000, ge=0)
    # Recovery objectives the DR drills are judged against (dr-drill): durations, e.g. 15m, 24h.
    dr_rto_target: Duration | None = None
    dr_rpo_target: Duration | None = None
    # Operations checklists (runbooks/checklists/checklists.py; docs/inventory.md: defaults' why).
    grafana_auth: BasicAuth | None = None
    argocd_namespace: str = "argocd"
    # The ArgoCD Application of a component on a cluster (fields {cluster}: the inventory host
    # name, {component}: e.g. thanos-store): upgrade-chart and the gitops-* runbooks.
    argocd_application_template: str = "{cluster}-{component}"
    # argocd-cm application.resourceTrackingMethod: how ArgoCD marks an Application's objects
    # (a re-sync by apply writes the same mark, so ArgoCD keeps counting them as its own).
    argocd_tracking_method: Literal["annotation", "label", "annotation+label"] = "annotation"
    # Re-sync from git (the emergency runbooks' remedy for drift): the agent's ArgoCD
    # Application; how to re-sync (argocd: ask ArgoCD to sync; apply: render the Application's
    # path from wk_git_url and server-side apply it); the kubectl that renders and diffs, and
    # the helm that inflates a Kustomization's helmCharts (`kubectl kustomize --enable-helm`).
    agent_application: str = ""
    # scale-agents: pod annotations per shard number (e.g. an address plan: the lab's IPs).
    agent_shard_pod_annotations: dict[str, dict[str, str]] = Field(default_factory=dict)
    # scale-prometheus: a full Prometheus server StatefulSet whose replicas are an HA set, and
    # the external label that tells them apart (the one Thanos Query deduplicates on).
    prometheus_statefulset: str = ""
    prometheus_replica_label: str = "replica"
    resync_mode: Literal["argocd", "apply"] = "argocd"
    kubectl: str = "kubectl"
    helm: str = "helm"
    data_volume_paths: tuple[str, ...] = ()
    log_index_pattern: str = "logs-*"
    log_retention_days: int = Field(30, ge=1)
    versions_latest: dict[str, str] = Field(default_factory=dict)
    versions_latest_file: str = ""
    threshold_disk_warn_percent: float = Field(80.0, gt=0, le=100)
    threshold_disk_fail_percent: float = Field(90.0, gt=0, le=100)
    threshold_wal_bytes: int = Field(2 * 1024**3, gt=0)
    threshold_s3_growth_percent: float = Field(50.0, gt=0)
    threshold_alert_firing_hours: float = Field(24.0, gt=0)
    threshold_backup_verified_age_days: float = Field(7.0, gt=0)
    threshold_process_memory_bytes: int = Field(8 * 1024**3, gt=0)
    threshold_process_cpu_cores: float = Field(4.0, gt=0)
    # Jobs every workload cluster must deliver (diagnose-missing-metrics, metrics-missing).
    expected_jobs: tuple[str, ...] = ("prometheus-agent",)
    # verify-backups: the programs it starts where watchkeeper runs on restored data (empty:
    # /usr/bin/prometheus, else PATH; thanos on PATH). `-e prometheus_binary` / `-e
    # thanos_binary` override them.
    prometheus_binary: str = ""
    thanos_binary: str = ""

    def secrets(self) -> list[tuple[str, SecretRef]]:
        """Every secret reference of this cluster, with its variable name."""
        found: list[tuple[str, SecretRef]] = []
        for key in ("s3_access_key", "s3_secret_key"):
            ref = getattr(self, key)
            if ref is not None:
                found.append((PREFIX + key, ref))
        for key in ("agent_auth", "opensearch_auth", "grafana_auth"):  # grafana: checklists
            auth = getattr(self, key)
            if auth is not None:
                found.append((f"{PREFIX}{key}.password", auth.password))
        return found

    def public_view(self) -> dict[str, Any]:
        """The resolved view for people and journals: secrets shown as references."""
        data = self.model_dump(mode="python")
        for key, ref in self.secrets():
            path = key[len(PREFIX) :].split(".")
            target = data
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = ref.describe()
        return data


_FIELDS = {name for name in ClusterConfig.model_fields if name != "name"}


def inventory_defaults() -> dict[str, Any]:
    """The model's default of each cluster variable that has a plain one (a string, number or
    bool), by its name without wk_: the engine hands it to every playbook as the extravar
    `wk_defaults`, so a playbook falls back to `wk_defaults.X` when the inventory leaves wk_X
    unset, and the default is declared once, here in ClusterConfig."""
    return {name: info.default for name, info in ClusterConfig.model_fields.items()
            if name != "name" and type(info.default) in (str, int, float, bool)}


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Inventory:
    """A loaded, validated inventory."""

    path: Path
    clusters: tuple[ClusterConfig, ...]
    groups: Mapping[str, tuple[str, ...]]
    digest: str

    def select(self, limit: str | None) -> tuple[ClusterConfig, ...]:
        """Clusters matched by an Ansible-style limit (comma separated hosts or groups)."""
        if not limit:
            return self.clusters
        wanted: set[str] = set()
        for token in (t.strip() for t in limit.split(",")):
            if not token:
                continue
            if token in self.groups:
                wanted.update(self.groups[token])
            elif any(c.name == token for c in self.clusters):
                wanted.add(token)
            else:
                known = sorted({c.name for c in self.clusters} | set(self.groups))
                hint = difflib.get_close_matches(token, known, n=1)
                raise InventoryError(
                    f"--limit {token!r} matches no cluster or group"
                    + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}")
                )
        return tuple(c for c in self.clusters if c.name in wanted)

    def cluster(self, name: str) -> ClusterConfig:
        for c in self.clusters:
            if c.name == name:
                return c
        raise InventoryError(f"cluster {name!r} is not in {self.path}")


@dataclass
class _RawHost:
    name: str
    variables: dict[str, Any]
    groups: list[str]


def _load_raw(path: Path) -> tuple[list[_RawHost], dict[str, tuple[str, ...]]]:
    """Resolve hosts and their variables with Ansible's own inventory code (group_vars,
    host_vars, precedence, vault) so what we validate is what the playbook sees."""
    # Imported here: ansible is heavy, and `watchkeeper list` should not pay for it.
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    _load_vault_secrets(loader)
    manager = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=manager)
    hosts: list[_RawHost] = []
    for host in manager.get_hosts():
        values = variables.get_vars(host=host)
        hosts.append(
            _RawHost(
                name=host.name,
                variables={k: values[k] for k in values if str(k).startswith(PREFIX)},
                groups=[g.name for g in host.get_groups() if g.name != "all"],
            )
        )
    groups = {
        name: tuple(h.name for h in group.get_hosts())
        for name, group in manager.groups.items()
        if name not in ("all", "ungrouped")
    }
    return hosts, groups


_CACHE_VERSION = "1"


def _cache_key(source: Path) -> str | None:
    """A content hash of a static YAML inventory, or None when it must not be cached
    (scripts or plugins, Ansible Vault values)."""
    base = source if source.is_dir() else source.parent
    files = [source] if source.is_file() else []
    for directory in (base / "group_vars", base / "host_vars") if source.is_file() else (source,):
        if directory.is_dir():
            files += sorted(p for p in directory.rglob("*") if p.is_file())
    digest = hashlib.sha256(_CACHE_VERSION.encode())
    for file in files:
        if file.suffix not in (".yml", ".yaml", ".json") or os.access(file, os.X_OK):
            return None
        raw = file.read_bytes()
        if b"$ANSIBLE_VAULT" in raw:
            return None
        digest.update(str(file).encode() + b"\0" + raw + b"\0")
    return digest.hexdigest()


def _load_raw_cached(source: Path) -> tuple[list[_RawHost], dict[str, tuple[str, ...]]]:
    """Ansible's inventory code costs ~0.3 s of imports and parsing per run; a static YAML
    inventory whose bytes did not change resolves to the same variables, so reuse them."""
    from runbooks.collection import state_dir

    key = _cache_key(source)
    if key is None:
        return _load_raw(source)
    cache = state_dir() / "inventory-cache" / f"{key}.json"
    try:
        data = json.loads(cache.read_text())
        hosts = [_RawHost(h["name"], h["variables"], h["groups"]) for h in data["hosts"]]
        return hosts, {k: tuple(v) for k, v in data["groups"].items()}
    except (OSError, ValueError, KeyError):
        pass
    hosts, groups = _load_raw(source)
    try:
        payload = {"hosts": [h.__dict__ for h in hosts], "groups": groups}
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        tmp.replace(cache)
    except (OSError, TypeError, ValueError):
        pass  # not JSON-able (e.g. a custom tag): just do not cache
    return hosts, groups


def _load_vault_secrets(loader: Any) -> None:
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        return
    from ansible.parsing.vault import get_file_vault_secret

    secret = get_file_vault_secret(filename=password_file, loader=loader)
    secret.load()
    loader.set_vault_secrets([("default", secret)])


def _origin(path: Path, host: _RawHost, variable: str) -> str:
    """The file that sets `variable` for `host`, by Ansible's precedence (host_vars first,
    then the most specific group, then `all`, then the inventory file itself)."""
    base = path if path.is_dir() else path.parent
    candidates = [base / "host_vars" / host.name]
    candidates += [base / "group_vars" / g for g in reversed(host.groups)]
    candidates.append(base / "group_vars" / "all")
    for stem in candidates:
        for file in _var_files(stem):
            if variable in _read_yaml_keys(file):
                return str(file)
    if variable in host.variables:
        return str(path)
    return "not set anywhere"


def _var_files(stem: Path) -> Iterable[Path]:
    if stem.is_dir():
        yield from sorted(p for p in stem.rglob("*") if p.suffix in (".yml", ".yaml", ".json"))
    for suffix in ("", ".yml", ".yaml", ".json"):
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            yield candidate


def _read_yaml_keys(file: Path) -> set[str]:
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # Vault tags must not stop us from reading which keys a file sets.
    _Loader.add_constructor("!vault", lambda loader, node: "!vault")
    try:
        data = yaml.load(file.read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def _describe(value: Any) -> str:
    if _is_vaulted(value):
        return "!vault"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_hosts(
    path: Path, hosts: Sequence[_RawHost]
) -> tuple[list[ClusterConfig], list[Problem]]:
    """Validate every host; collect every problem instead of stopping at the first."""
    clusters: list[ClusterConfig] = []
    problems: list[Problem] = []
    for host in hosts:
        data: dict[str, Any] = {"name": host.name}
        for key, value in host.variables.items():
            short = key[len(PREFIX) :]
            if short not in _FIELDS:
                close = difflib.get_close_matches(short, sorted(_FIELDS), n=1)
                problems.append(
                    Problem(
                        cluster=host.name,
                        field=key,
                        expected="a known wk_ variable"
                        + (f" (did you mean {PREFIX}{close[0]}?)" if close else ""),
                        found="unknown variable",
                        source=_origin(path, host, key),
                    )
                )
                continue
            data[short] = value
        data.setdefault("cluster", host.name)
        try:
            config = ClusterConfig.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                loc = [str(p) for p in err["loc"]]
                variable = PREFIX + loc[0]
                expected = _expected(err)
                if err["type"] == "missing":
                    found = "nothing"
                elif "secret" in expected:
                    found = "a plain value (not shown: it may be a real secret)"
                else:
                    found = _describe(err.get("input"))
                problems.append(
                    Problem(
                        cluster=host.name,
                        field=".".join([variable, *loc[1:]]),
                        expected=expected,
                        found=found,
                        source=_origin(path, host, variable),
                    )
                )
            continue
        problems.extend(_role_problems(path, host, config))
        clusters.append(config)
    return clusters, problems


def _expected(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, ", "Input should be "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message[:1].lower() + message[1:]


def _role_problems(path: Path, host: _RawHost, config: ClusterConfig) -> list[Problem]:
    """Cross-field rules: what each role must declare."""
    problems: list[Problem] = []

    def need(variable: str, expected: str) -> None:
        problems.append(
            Problem(host.name, PREFIX + variable, expected, "nothing",
                    _origin(path, host, variable))
        )

    if config.role == "workload":
        if config.agent_url is None:
            need("agent_url", "the Prometheus Agent URL of a workload cluster")
        if config.receive_remote_write_url is None:
            need("receive_remote_write_url",
                 "where the agent remote-writes (…:19291/api/v1/receive)")
    if config.role == "observability" and not config.receive_http_urls:
        need("receive_http_urls", "the receivers' HTTP URLs (port 10902) of the central cluster")
    if (config.s3_access_key is None) != (config.s3_secret_key is None):
        need(
            "s3_secret_key" if config.s3_secret_key is None else "s3_access_key",
            "both S3 keys or neither (neither = the default AWS credential chain)",
        )
    return problems


def digest_of(clusters: Sequence[ClusterConfig]) -> str:
    """A stable digest of the resolved inventory (secrets as references, never values)."""
    view = [c.public_view() for c in clusters]
    raw = json.dumps(view, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def check_inventory(path: str | os.PathLike[str]) -> tuple[Inventory | None, list[Problem]]:
    """Load and validate; return the inventory (None when invalid) and every problem."""
    source = Path(path).expanduser().resolve()
    if not source.exists():
        problem = Problem(
            "-", "-i", "an inventory file or directory", f"{source} does not exist", "command line"
        )
        return None, [problem]
    try:
        hosts, groups = _load_raw_cached(source)
    except Exception as exc:  # ansible parse errors carry their own detail
        return None, [Problem("-", "-", "a parseable Ansible inventory", str(exc), str(source))]
    if not hosts:
        problem = Problem("-", "hosts", "one host per cluster", "no hosts", str(source))
        return None, [problem]
    clusters, problems = validate_hosts(source, hosts)
    if problems:
        return None, problems
    inventory = Inventory(
        path=source, clusters=tuple(clusters), groups=groups, digest=digest_of(clusters)
    )
    return inventory, []


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Load and validate, raising InventoryError with every problem."""
    inventory, problems = check_inventory(path)
    if inventory is None:
        raise InventoryError(problems)
    return inventory
