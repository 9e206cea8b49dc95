"""The lab: a miniature of the platform made of the real programs, on loopback.

`Lab(dir).up()` builds what is missing (cached), starts what is not healthy and waits until
every component answers its health check; `status()` reports each; `down()` stops only the
PIDs the lab recorded. The lab writes its own inventory in the production schema, so every
runbook runs against it with `-i <lab>/inventory`.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runbooks.lab import build, seed, topology
from runbooks.lab.errors import LabError
from runbooks.lab.process import Record, start, stop
from runbooks.lab.topology import Addresses

__all__ = ["ComponentStatus", "Lab", "LabError", "LabStatus"]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
OPENSEARCH_USER = "watchkeeper-lab"
#: The programs the data plane runs (versions.toml pins more, e.g. the control plane's).
LAB_PROGRAMS = ["thanos", "minio", "opensearch", "prometheus", "alertmanager"]
HEALTH_DEADLINE = 180.0


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    version: str
    pid: int | None
    healthy: bool
    detail: str = ""


@dataclass(frozen=True)
class LabStatus:
    inventory: Path
    components: tuple[ComponentStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inventory": str(self.inventory),
            "components": [asdict(c) for c in self.components],
        }


@dataclass(frozen=True)
class Component:
    """One process of the lab: how to start it and how to tell it is healthy."""

    name: str
    address: str
    version: str
    argv: tuple[str, ...]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    grace_seconds: float = 30.0
    user: str | None = None
    cwd: Path | None = None


def default_lab_dir() -> Path:
    if os.environ.get("WATCHKEEPER_LAB_DIR"):
        return Path(os.environ["WATCHKEEPER_LAB_DIR"])
    if os.geteuid() == 0:
        # OpenSearch runs as an unprivileged user and must reach its data: not under /root.
        return Path("/var/lib/watchkeeper/lab")
    return Path(os.path.expanduser("~/.local/share/watchkeeper/lab"))


def _http_ok(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"HTTP {response.status}"
    except OSError as exc:
        return False, str(getattr(exc, "reason", exc))


class Lab:
    """One lab directory and everything running from it."""

    def __init__(self, lab_dir: Path | None = None):
        self.dir = (lab_dir or default_lab_dir()).resolve()
        self.addresses = Addresses.for_lab(self.dir)

    # ------------------------------------------------------------------ paths and state
    @property
    def inventory_dir(self) -> Path:
        return self.dir / "inventory"

    def _state_path(self) -> Path:
        return self.dir / "state.json"

    def _load_state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._state_path().read_text())
            return data
        except (OSError, ValueError):
            return {"processes": {}, "versions": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path())

    def env(self) -> dict[str, str]:
        """The secret environment the lab inventory's references point at."""
        path = self.dir / "lab.env"
        if not path.exists():
            return {}
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    def _ensure_env(self) -> dict[str, str]:
        env = self.env()
        if not env:
            env = {
                "WATCHKEEPER_LAB_S3_ACCESS_KEY": "lab" + secrets.token_hex(6),
                "WATCHKEEPER_LAB_S3_SECRET_KEY": secrets.token_hex(16),
            }
            path = self.dir / "lab.env"
            path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            path.chmod(0o600)
        return env

    # ------------------------------------------------------------------ plan
    def _components(self, binaries: dict[str, Path], versions: dict[str, str]) -> list[Component]:
        a = self.addresses
        d = self.dir
        env = self.env()
        thanos = str(binaries["thanos"])
        comps: list[Component] = [
            Component(
                "s3", f"{a.s3}:9000", versions["minio"],
                (str(binaries["minio"]), "server", str(d / "data" / "s3"), "--address",
                 f"{a.s3}:9000", "--console-address", f"{a.s3}:9001", "--quiet"),
                f"http://{a.s3}:9000/minio/health/live",
                env={"MINIO_ROOT_USER": env["WATCHKEEPER_LAB_S3_ACCESS_KEY"],
                     "MINIO_ROOT_PASSWORD": env["WATCHKEEPER_LAB_S3_SECRET_KEY"],
                     "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
            ),
        ]
        for i in range(topology.RECEIVERS):
            ip = a.receiver(i)
            comps.append(Component(
                f"thanos-receive-{i}", f"{ip}:19291", versions["thanos"],
                (thanos, "receive", f"--tsdb.path={d / 'data' / f'receive-{i}'}",
                 f"--grpc-address={ip}:10901", f"--http-address={ip}:10902",
                 f"--remote-write.address={ip}:19291",
                 # v0.40+ also listen for Cap'n Proto replication, on 0.0.0.0 by default.
                 f"--receive.capnproto-address={ip}:19391",
                 f'--label=receive_replica="thanos-receive-{i}"',
                 f"--receive.local-endpoint={ip}:10901",
                 f"--receive.replication-factor={topology.REPLICATION_FACTOR}",
                 f"--receive.hashrings-file={d / 'config' / 'hashrings.json'}",
                 "--receive.hashrings-algorithm=ketama",
                 "--receive.hashrings-file-refresh-interval=15s",
                 f"--objstore.config-file={d / 'config' / 'objstore.yml'}",
                 # Short blocks so uploads come within minutes (hidden flags, keep them equal).
                 f"--tsdb.min-block-duration={topology.BLOCK_DURATION}",
                 f"--tsdb.max-block-duration={topology.BLOCK_DURATION}",
                 "--tsdb.retention=6h"),
                f"http://{ip}:10902/-/ready", grace_seconds=120.0,
            ))
        comps.append(Component(
            "thanos-store", f"{a.store}:10902", versions["thanos"],
            (thanos, "store", f"--data-dir={d / 'data' / 'store'}",
             f"--objstore.config-file={d / 'config' / 'objstore.yml'}",
             f"--grpc-address={a.store}:10901", f"--http-address={a.store}:10902",
             "--sync-block-duration=30s"),
            f"http://{a.store}:10902/-/ready",
        ))
        endpoints = [f"--endpoint={a.receiver(i)}:10901" for i in range(topology.RECEIVERS)]
        comps.append(Component(
            "thanos-query", f"{a.query}:10902", versions["thanos"],
            (thanos, "query", f"--grpc-address={a.query}:10901",
             f"--http-address={a.query}:10902", *endpoints, f"--endpoint={a.store}:10901",
             "--query.replica-label=receive_replica", "--query.replica-label=replica"),
            f"http://{a.query}:10902/-/ready",
        ))
        epoch = self._canary_epoch()
        prometheus = str(binaries["prometheus"])
        for i, cluster in enumerate(topology.CLUSTERS):
            comps.append(Component(
                f"canary-{cluster}", f"{a.canary(i)}:8080", "watchkeeper",
                (sys.executable, "-m", "runbooks.lab.canary", "--address",
                 f"{a.canary(i)}:8080", "--cluster", cluster, "--epoch", str(epoch)),
                f"http://{a.canary(i)}:8080/-/ready",
            ))
            comps.append(Component(
                f"agent-{cluster}", f"{a.agent(i)}:9090", versions["prometheus"],
                (prometheus, "--enable-feature=agent",
                 f"--config.file={d / 'config' / f'agent-{cluster}.yml'}",
                 f"--storage.agent.path={d / 'data' / f'agent-{cluster}'}",
                 f"--web.listen-address={a.agent(i)}:9090"),
                f"http://{a.agent(i)}:9090/-/ready",
            ))
        comps.append(Component(
            "prometheus-ha-0", f"{a.prometheus}:9090", versions["prometheus"],
            (prometheus, f"--config.file={d / 'config' / 'prometheus.yml'}",
             f"--storage.tsdb.path={d / 'data' / 'prometheus'}",
             f"--web.listen-address={a.prometheus}:9090", "--web.enable-admin-api",
             "--storage.tsdb.min-block-duration=2h", "--storage.tsdb.retention.time=1d"),
            f"http://{a.prometheus}:9090/-/ready",
        ))
        comps.append(Component(
            "alertmanager", f"{a.alertmanager}:9093", versions["alertmanager"],
            (str(binaries["alertmanager"]),
             f"--config.file={d / 'config' / 'alertmanager.yml'}",
             f"--storage.path={d / 'data' / 'alertmanager'}",
             f"--web.listen-address={a.alertmanager}:9093", "--cluster.listen-address="),
            f"http://{a.alertmanager}:9093/-/ready",
        ))
        home = binaries["opensearch"]
        comps.append(Component(
            "opensearch", f"{a.opensearch}:9200", versions["opensearch"],
            (str(home / "bin" / "opensearch"), "-Ediscovery.type=single-node",
             f"-Enetwork.host={a.opensearch}", "-Ehttp.port=9200", "-Etransport.port=9300",
             f"-Epath.data={d / 'opensearch' / 'data'}",
             f"-Epath.logs={d / 'opensearch' / 'logs'}",
             f"-Epath.repo={d / 'opensearch' / 'snapshots'}"),
            f"http://{a.opensearch}:9200/_cluster/health?wait_for_status=yellow&timeout=1s",
            env={"OPENSEARCH_JAVA_HOME": str(build.load_specs()["opensearch"].options["java_home"]),
                 "OPENSEARCH_PATH_CONF": str(d / "opensearch" / "config"),
                 "OPENSEARCH_JAVA_OPTS": "-Xms384m -Xmx384m"},
            user=OPENSEARCH_USER if os.geteuid() == 0 else None,
            cwd=d / "opensearch",
        ))
        return comps

    def _canary_epoch(self) -> float:
        path = self.dir / "canary-epoch"
        if not path.exists():
            path.write_text(f"{time.time():.3f}\n")
        return float(path.read_text())

    # ------------------------------------------------------------------ configuration
    def _write_configs(self, home: Path) -> None:
        a, d, env = self.addresses, self.dir, self.env()
        config = d / "config"
        config.mkdir(parents=True, exist_ok=True)
        ring = config / "hashrings.json"
        if not ring.exists():  # runbooks change the ring later; never overwrite theirs
            ring.write_bytes(topology.hashring_bytes(a))
        (config / "objstore.yml").write_text(topology.objstore_yaml(
            topology.BLOCKS_BUCKET, f"{a.s3}:9000", env["WATCHKEEPER_LAB_S3_ACCESS_KEY"],
            env["WATCHKEEPER_LAB_S3_SECRET_KEY"]))
        (config / "objstore.yml").chmod(0o600)
        for i, cluster in enumerate(topology.CLUSTERS):
            receiver = f"http://{a.receiver(i % topology.RECEIVERS)}:19291/api/v1/receive"
            (config / f"agent-{cluster}.yml").write_text(
                topology.agent_config(cluster, a.agent(i), a.canary(i), receiver))
        rules = config / "rules.yml"
        rules.write_text(topology.RULES)
        (config / "prometheus.yml").write_text(topology.prometheus_config(a, rules))
        (config / "alertmanager.yml").write_text(topology.ALERTMANAGER)
        self._opensearch_config(home)

    def _opensearch_config(self, home: Path) -> None:
        base = self.dir / "opensearch"
        conf = base / "config"
        if not conf.exists():
            shutil.copytree(home / "config", conf)
            options = conf / "jvm.options"
            # The heap comes from OPENSEARCH_JAVA_OPTS (drop the 1g default); the GC log, heap
            # dumps and error files go under the lab, not relative to the working directory.
            lines = [line for line in options.read_text().splitlines()
                     if not line.strip().startswith(("-Xms", "-Xmx"))]
            text = "\n".join(lines) + "\n"
            text = text.replace("file=logs/", f"file={base / 'logs'}/")
            text = text.replace("HeapDumpPath=data", f"HeapDumpPath={base / 'data'}")
            text = text.replace("ErrorFile=logs/", f"ErrorFile={base / 'logs'}/")
            options.write_text(text)
        for sub in ("data", "logs", "snapshots"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = _ensure_user(OPENSEARCH_USER)
            for path in [base, *base.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
            probe = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                                    "--clear-groups", "test", "-w", str(base / "data")],
                                   capture_output=True)
            if probe.returncode != 0:
                raise LabError(
                    f"OpenSearch refuses to run as root and user {OPENSEARCH_USER} cannot reach"
                    f" {base}: put the lab where every user can traverse (--lab-dir under"
                    " /var/lib or /tmp, not under /root)")

    # ------------------------------------------------------------------ lifecycle
    def up(self, progress: Progress = lambda s: None) -> LabStatus:
        """Idempotent: build what is missing, start what is down, wait for health."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        env = self._ensure_env()
        progress(f"lab directory {self.dir}, addresses {self.addresses.prefix}.0/24")
        binaries = build.ensure_all(progress, LAB_PROGRAMS)
        state = self._load_state()
        versions = self._versions(binaries, state)
        self._write_configs(binaries["opensearch"])
        components = self._components(binaries, versions)
        by_name = {c.name: c for c in components}

        # OpenSearch takes the longest to start: launch it first, wait for it last.
        order = ["opensearch", "s3"]
        order += [c.name for c in components if c.name not in order]
        for name in order:
            component = by_name[name]
            if name == "thanos-receive-0":
                self._wait_healthy([by_name["s3"]], progress)
                self._seed_buckets(env)
            self._ensure_running(component, state, progress)
            self._save_state(state)
        self._wait_healthy(components, progress)
        self._wait_remote_write(progress)
        self._write_inventory(versions)
        seed.gitops_repo(self.dir / "git" / "platform.git", self.addresses)
        self._seed_opensearch(env)
        progress(f"lab up in {time.monotonic() - started:.1f} s; inventory {self.inventory_dir}")
        return self.status()

    def _versions(self, binaries: dict[str, Path], state: dict[str, Any]) -> dict[str, str]:
        specs = build.load_specs()
        versions: dict[str, str] = dict(state.get("versions", {}))
        for name, spec in specs.items():
            if name not in binaries:
                continue
            if spec.source == "debian":
                if name not in versions:
                    out = subprocess.run([str(binaries[name]), "--version"], capture_output=True,
                                         text=True)
                    words = (out.stdout + out.stderr).split()
                    versions[name] = words[2] if len(words) > 2 else "unknown"
            else:
                versions[name] = spec.version.lstrip("v")
        state["versions"] = versions
        return versions

    def _ensure_running(self, component: Component, state: dict[str, Any],
                        progress: Progress) -> None:
        records = state.setdefault("processes", {})
        existing = records.get(component.name)
        if existing and _record(existing).alive():
            if existing.get("binary") == component.argv[0]:
                return
            progress(f"restarting {component.name}: its pinned binary changed")
            stop(_record(existing), component.grace_seconds)
        _check_free(component)
        argv: tuple[str, ...] = component.argv
        if component.user:
            user = pwd.getpwnam(component.user)
            argv = ("setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                    "--clear-groups", *argv)
        progress(f"starting {component.name} on {component.address}")
        record = start(argv, self.dir / "logs" / f"{component.name}.log", component.env,
                       component.cwd)
        records[component.name] = record.to_dict() | {
            "address": component.address, "health_url": component.health_url,
            "version": component.version, "binary": component.argv[0],
        }

    def _wait_healthy(self, components: list[Component], progress: Progress) -> None:
        deadline = time.monotonic() + HEALTH_DEADLINE
        pending = {c.name: c for c in components}
        details: dict[str, str] = {}
        announced = 0.0
        while pending and time.monotonic() < deadline:
            for name, component in list(pending.items()):
                ok, details[name] = _http_ok(component.health_url)
                if ok:
                    del pending[name]
            if pending and time.monotonic() - announced > 10:
                progress("waiting for " + ", ".join(sorted(pending)))
                announced = time.monotonic()
            if pending:
                time.sleep(0.5)
        if pending:
            name = sorted(pending)[0]
            tail = _tail(self.dir / "logs" / f"{name}.log")
            raise LabError(
                f"not healthy after {HEALTH_DEADLINE:.0f} s: {', '.join(sorted(pending))}"
                f" ({name}: {details.get(name)}); last lines of {name}'s log:\n{tail}")

    def _wait_remote_write(self, progress: Progress, deadline_s: float = 90.0) -> None:
        """Healthy is not enough for a demo: wait until every agent has delivered samples."""
        deadline = time.monotonic() + deadline_s
        pending = list(topology.CLUSTERS)
        while pending and time.monotonic() < deadline:
            for i, cluster in enumerate(topology.CLUSTERS):
                if cluster in pending and _sent_timestamp(self.addresses.agent(i)) > 0:
                    pending.remove(cluster)
            if pending:
                time.sleep(1.0)
        if pending:
            raise LabError(f"agents of {', '.join(pending)} have not delivered a sample in"
                           f" {deadline_s:.0f} s: read {self.dir / 'logs'}/agent-*.log")
        progress("remote write flowing from every agent")

    def _observability_cluster(self, env: dict[str, str]) -> Any:
        from runbooks.inventory import ClusterConfig, SecretRef

        os.environ.update(env)
        return ClusterConfig(
            name="observability", role="observability",
            receive_http_urls=(f"http://{self.addresses.receiver(0)}:10902",),
            s3_endpoint=f"http://{self.addresses.s3}:9000",
            s3_access_key=SecretRef("env", "WATCHKEEPER_LAB_S3_ACCESS_KEY"),
            s3_secret_key=SecretRef("env", "WATCHKEEPER_LAB_S3_SECRET_KEY"),
            opensearch_url=f"http://{self.addresses.opensearch}:9200",
        )

    def _seed_buckets(self, env: dict[str, str]) -> None:
        from runbooks.clients import s3_client

        seed.buckets(s3_client(self._observability_cluster(env)),
                     [topology.BLOCKS_BUCKET, topology.BACKUPS_BUCKET])

    def _seed_opensearch(self, env: dict[str, str]) -> None:
        from runbooks.clients import opensearch_client

        seed.log_indices(opensearch_client(self._observability_cluster(env)))

    def status(self) -> LabStatus:
        """Each component the lab started, from its recorded PID and its own health check."""
        components: list[ComponentStatus] = []
        for name, raw in self._load_state().get("processes", {}).items():
            record = _record(raw)
            alive = record.alive()
            healthy, detail = _http_ok(raw["health_url"]) if alive else (False, "not running")
            components.append(ComponentStatus(name, raw["address"], raw["version"],
                                              record.pid if alive else None, healthy,
                                              "" if healthy else detail))
        git = self.dir / "git" / "platform.git"
        exists = (git / "HEAD").exists()
        components.append(ComponentStatus("git", f"file://{git}", _git_version(), None, exists,
                                          "" if exists else "not created"))
        return LabStatus(self.inventory_dir, tuple(components))

    def rss_bytes(self) -> int:
        """Total RSS of every process the lab recorded (and their children)."""
        records = self._load_state().get("processes", {})
        return sum(_record(r).rss_bytes() for r in records.values() if _record(r).alive())

    def pids(self) -> list[int]:
        return [r["pid"] for r in self._load_state().get("processes", {}).values()]

    def down(self, purge: bool = False, progress: Progress = lambda s: None) -> None:
        """Stop every process the lab recorded (receivers get time to flush), nothing else."""
        state = self._load_state()
        records = state.get("processes", {})
        # Writers first, receivers after their agents, storage last.
        def rank(name: str) -> int:
            for i, prefix in enumerate(("agent-", "canary-", "prometheus", "alertmanager",
                                        "thanos-query", "thanos-store", "thanos-receive",
                                        "opensearch", "s3")):
                if name.startswith(prefix):
                    return i
            return 99

        for name in sorted(records, key=rank):
            raw = records[name]
            grace = 120.0 if name.startswith("thanos-receive") else 60.0
            record = _record(raw)
            if record.alive():
                began = time.monotonic()
                stop(record, grace)
                progress(f"stopped {name} (pid {record.pid}) in {time.monotonic() - began:.1f} s")
        state["processes"] = {}
        if self._state_path().exists():
            self._save_state(state)
        if purge and self.dir.exists():
            shutil.rmtree(self.dir)

    # ------------------------------------------------------------------ inventory
    def _write_inventory(self, versions: dict[str, str]) -> None:
        from runbooks.lab.inventory import write_lab_inventory

        write_lab_inventory(self.inventory_dir, self.addresses, versions,
                            git_url=f"file://{self.dir / 'git' / 'platform.git'}")


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _check_free(component: Component) -> None:
    """Refuse to start on an address something else holds (another lab whose directory maps
    to the same block, or any other program), instead of failing later in a log file."""
    import socket

    host, port = component.address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise LabError(
                f"{component.name}: {component.address} is already in use ({exc.strerror}) by a"
                " program this lab did not start; stop it, or use another --lab-dir") from exc


def _sent_timestamp(agent_ip: str) -> float:
    """The agent's newest delivered sample time (0 when none yet or unreachable)."""
    try:
        with urllib.request.urlopen(f"http://{agent_ip}:9090/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_remote_storage_queue_highest_sent_timestamp_seconds{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _record(raw: dict[str, Any]) -> Record:
    return Record(int(raw["pid"]), int(raw["start_ticks"]), str(raw["argv0"]))


def _git_version() -> str:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True)
    return out.stdout.split()[-1] if out.returncode == 0 else "?"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
