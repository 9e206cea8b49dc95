"""One change at a time per cluster.

A mutating runbook holds a lock per cluster for the whole run. The lock expires if its holder
dies: a Kubernetes Lease (renewed while the run lives) when the cluster has a kube context, a
lock file (holder PID checked, expiry renewed) otherwise. Read-only runbooks and check mode take
no lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from runbooks.collection import state_dir
from runbooks.errors import LockedError
from runbooks.inventory import ClusterConfig

log = logging.getLogger(__name__)

LEASE_NAME = "watchkeeper-lock"
DEFAULT_TTL = 120


@dataclass(frozen=True)
class Holder:
    """Who holds a lock."""

    runbook: str
    run_id: str
    since: datetime
    host: str
    pid: int

    def describe(self) -> str:
        return f"locked by {self.runbook} run {self.run_id} since {self.since.isoformat()}"


class Lock(Protocol):
    def acquire(self) -> None: ...
    def renew(self) -> None: ...
    def release(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FileLock:
    """A JSON lock file created with O_EXCL; stale when its holder's PID is gone (same host)
    or its expiry passed (another host)."""

    def __init__(
        self, cluster: str, holder: Holder, ttl: int = DEFAULT_TTL, root: Path | None = None
    ):
        directory = root or state_dir() / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{cluster}.lock"
        self.holder = holder
        self.ttl = ttl

    def _payload(self) -> dict[str, Any]:
        return {
            "runbook": self.holder.runbook,
            "run_id": self.holder.run_id,
            "since": self.holder.since.isoformat(),
            "host": self.holder.host,
            "pid": self.holder.pid,
            "expires": (_utcnow() + timedelta(seconds=self.ttl)).isoformat(),
        }

    def _stale(self, data: dict[str, Any]) -> bool:
        if datetime.fromisoformat(data["expires"]) < _utcnow():
            return True
        if data.get("host") == socket.gethostname():
            try:
                os.kill(int(data["pid"]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    data = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    data = None
                if data is None or self._stale(data):
                    log.warning("removing stale lock %s (%s)", self.path, data)
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockedError(
                    Holder(
                        runbook=data["runbook"],
                        run_id=data["run_id"],
                        since=datetime.fromisoformat(data["since"]),
                        host=data["host"],
                        pid=int(data["pid"]),
                    ).describe()
                    + f" (lock file {self.path}; it expires if that run dies)"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(self._payload(), handle)
            return
        raise LockedError(f"could not take the lock file {self.path}; retry")

    def renew(self) -> None:
        tmp = self.path.with_suffix(".renew")
        tmp.write_text(json.dumps(self._payload()))
        tmp.replace(self.path)

    def release(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if data.get("run_id") == self.holder.run_id:
            self.path.unlink(missing_ok=True)


class LeaseLock:
    """A coordination.k8s.io/v1 Lease in the cluster's namespace."""

    def __init__(self, cluster: ClusterConfig, holder: Holder, ttl: int = DEFAULT_TTL):
        from runbooks.clients import kube_api

        self.cluster = cluster
        self.holder = holder
        self.ttl = ttl
        self._api = kube_api(cluster)

    def _coordination(self) -> Any:
        from kubernetes import client

        return client.CoordinationV1Api(self._api)

    def _body(self, resource_version: str | None = None) -> Any:
        from kubernetes import client

        stamp = _utcnow()
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=LEASE_NAME,
                namespace=self.cluster.namespace,
                resource_version=resource_version,
                annotations={
                    "watchkeeper.io/runbook": self.holder.runbook,
                    "watchkeeper.io/run-id": self.holder.run_id,
                    "watchkeeper.io/since": self.holder.since.isoformat(),
                    "watchkeeper.io/host": self.holder.host,
                },
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.holder.run_id,
                lease_duration_seconds=self.ttl,
                acquire_time=stamp,
                renew_time=stamp,
            ),
        )

    def acquire(self) -> None:
        from kubernetes.client.exceptions import ApiException

        api = self._coordination()
        ns = self.cluster.namespace
        try:
            api.create_namespaced_lease(ns, self._body())
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        current = api.read_namespaced_lease(LEASE_NAME, ns)
        spec = current.spec
        renewed = spec.renew_time or spec.acquire_time
        expired = renewed is None or renewed + timedelta(
            seconds=spec.lease_duration_seconds or self.ttl
        ) < _utcnow()
        if spec.holder_identity and not expired:
            notes = current.metadata.annotations or {}
            raise LockedError(
                f"locked by {notes.get('watchkeeper.io/runbook', '?')} run"
                f" {spec.holder_identity} since {notes.get('watchkeeper.io/since', '?')}"
                f" (Lease {ns}/{LEASE_NAME} in {self.cluster.name}; it expires if that run dies)"
            )
        try:  # take over the expired lease; resourceVersion makes a race lose cleanly
            api.replace_namespaced_lease(
                LEASE_NAME, ns, self._body(current.metadata.resource_version)
            )
        except ApiException as exc:
            if exc.status == 409:
                raise LockedError(f"lost the race for Lease {ns}/{LEASE_NAME}; retry") from exc
            raise

    def renew(self) -> None:
        api = self._coordination()
        current = api.read_namespaced_lease(LEASE_NAME, self.cluster.namespace)
        if current.spec.holder_identity != self.holder.run_id:
            log.error("lease %s was taken over by %s", LEASE_NAME, current.spec.holder_identity)
            return
        current.spec.renew_time = _utcnow()
        api.replace_namespaced_lease(LEASE_NAME, self.cluster.namespace, current)

    def release(self) -> None:
        from kubernetes.client.exceptions import ApiException

        api = self._coordination()
        try:
            current = api.read_namespaced_lease(LEASE_NAME, self.cluster.namespace)
            if current.spec.holder_identity == self.holder.run_id:
                api.delete_namespaced_lease(LEASE_NAME, self.cluster.namespace)
        except ApiException as exc:
            log.warning("could not release lease in %s: %s", self.cluster.name, exc.reason)


def lock_for(cluster: ClusterConfig, holder: Holder, ttl: int = DEFAULT_TTL) -> Lock:
    """A Lease where the cluster has a kube context, a lock file otherwise."""
    if cluster.kube_context:
        return LeaseLock(cluster, holder, ttl)
    return FileLock(cluster.name, holder, ttl)


@contextmanager
def cluster_locks(
    clusters: tuple[ClusterConfig, ...], runbook: str, run_id: str, ttl: int = DEFAULT_TTL
) -> Any:
    """Hold one lock per cluster for the body; renew them in the background; release all."""
    holder = Holder(runbook, run_id, _utcnow(), socket.gethostname(), os.getpid())
    stop = threading.Event()
    with ExitStack() as stack:
        locks: list[Lock] = []
        for cluster in sorted(clusters, key=lambda c: c.name):  # fixed order: no deadlock
            lock = lock_for(cluster, holder, ttl)
            lock.acquire()
            stack.callback(lock.release)
            locks.append(lock)

        def renew_loop() -> None:
            while not stop.wait(ttl / 3):
                for lock in locks:
                    try:
                        lock.renew()
                    except Exception as exc:  # keep renewing the others
                        log.warning("lock renewal failed: %s", exc)

        thread = threading.Thread(target=renew_loop, name="watchkeeper-lock-renew", daemon=True)
        thread.start()
        stack.callback(thread.join, 5)
        stack.callback(stop.set)
        yield holder
