"""The lab node agent: the lab's one stand-in, for the kubelet of node `lab-node`.

Everything else in the lab is the real program (etcd, kube-apiserver, controller-manager,
scheduler, KWOK for the node's heartbeat, Thanos, Prometheus, ...). No kubelet can run here
(no container runtime), so this small loop does the part of a kubelet the runbooks depend on,
for the pods the scheduler binds to `lab-node`:

- a new pod starts the matching local program: the container image, repository and tag,
  names the build (images.json, written by `lab up`: `repository:tag` -> the lab's build of
  that version). An image the lab has no build of fails as a pull does: the container waits
  in ErrImagePull, then ImagePullBackOff, retried with the kubelet's doubling back-off; a build
  still under way (`lab up` builds second versions after the lab is up) is retried the same
  way and starts once it is there. `command[1:] + args` are its arguments, with `$(VAR)`
  expanded from the container's env (values and the downward API fields metadata.name /
  metadata.namespace / status.podIP);
- each pod gets its own IP: `lab.watchkeeper.io/ip` on the pod template gives the address
  (for a StatefulSet, that of ordinal 0; ordinal N gets +N). As root the pod gets a network
  namespace of its own holding that address, on the lab's bridge (network.py, as a CNI bridge
  plugin does), and its process starts inside it: `0.0.0.0` is the pod's own. Without root
  (reduced mode) `0.0.0.0:` in an argument becomes `<pod IP>:` on 127/8;
- volumes: configMap and secret volumes are written as files under the pod's directory,
  persistentVolumeClaims resolve to their PersistentVolume's hostPath, emptyDir is a
  directory; a container's mountPath in an argument becomes that host directory;
- a changed ConfigMap is written to the file the process reads (atomically), after an
  optional delay (`--configmap-delay`, or the pod annotation
  `lab.watchkeeper.io/configmap-delay-seconds`), to reproduce the kubelet's propagation lag;
- readiness comes from the container's own readinessProbe (httpGet) against the pod IP;
- a deleted pod gets SIGTERM, up to terminationGracePeriodSeconds to exit (receivers flush
  and upload), then SIGKILL, and is removed from the API; a process that dies is restarted
  (restartCount grows), as restartPolicy Always does.

- logs through the API: the kubelet's read-only `/containerLogs/NS/POD/CONTAINER` endpoint is
  served over HTTPS on the node's kubelet port (10250, the node's
  status.daemonEndpoints.kubeletEndpoint, which KWOK's stage reports), so `kubectl logs` and
  pods/log reach a pod's output through the real API server, with tailLines, sinceSeconds /
  sinceTime, timestamps, limitBytes, previous and follow. The output file is the process's
  own (not the CRI format a container runtime writes, which KWOK's log server requires):
  processes write to it directly, so they outlive a restart of this agent.

Not emulated: resource limits, probes other than httpGet readiness, init containers,
projected service-account tokens, exec/attach/port-forward through the API. The state (which
PID runs which pod) lives in <root>/state.json, so a restarted agent adopts its processes instead of
starting them twice.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watchkeeper_lab.network import PodNetwork
from watchkeeper_lab.process import Record, start, stop

log = logging.getLogger("watchkeeper.nodeagent")

NODE = "lab-node"
IP_ANNOTATION = "lab.watchkeeper.io/ip"
DELAY_ANNOTATION = "lab.watchkeeper.io/configmap-delay-seconds"
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
#: The kubelet's image pull back-off: 10 s, doubling, at most 300 s.
PULL_BACKOFF_FIRST = 10.0
PULL_BACKOFF_MAX = 300.0


class ImagePullError(Exception):
    """The lab has no build for a container's image (or its build is not finished)."""


def image_key(image: str) -> str:
    """`repository:tag` of an image reference: a digest is dropped, no tag means `latest`."""
    reference = image.split("@", 1)[0]
    if ":" not in reference.rsplit("/", 1)[-1]:
        reference += ":latest"
    return reference


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_ip(pod: Any) -> str | None:
    """The IP the lab gives this pod, from its template's annotation (None: not ours)."""
    base = (pod.metadata.annotations or {}).get(IP_ANNOTATION)
    if not base:
        return None
    offset = 0
    owners = pod.metadata.owner_references or []
    if any(o.kind == "StatefulSet" for o in owners):
        offset = int(pod.metadata.name.rsplit("-", 1)[1])
    return str(ipaddress.ip_address(base) + offset)


class NodeAgent:
    def __init__(self, kubeconfig: Path, root: Path, images: dict[str, str],
                 default_delay: float = 0.0, podnet: PodNetwork | None = None):
        import urllib3
        from kubernetes import client, config

        # The lab's API server has a self-signed certificate (insecure-skip-tls-verify).
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

        self.api: Any = client.CoreV1Api(
            config.new_client_from_config(config_file=str(kubeconfig)))
        self.root = root
        self.images = images
        #: uid -> {"failures": n, "retry_at": monotonic, "reason": ..., "message": ...}
        self.pulls: dict[str, dict[str, Any]] = {}
        self.default_delay = default_delay
        self.podnet = podnet
        self.state_path = root / "state.json"
        self.pods: dict[str, dict[str, Any]] = self._load()
        self.stopping: set[str] = set()
        # uid -> monotonic time at which a stopping pod's process gets SIGKILL: the end of its
        # grace period, brought forward when the grace is shortened or the pod force-deleted.
        self.kill_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.healthy_at = 0.0

    # ------------------------------------------------------------------ state
    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        # Keys starting with "_" are the previous agent's in-flight work (probe counters, a
        # liveness restart in progress): its threads are gone, so start those afresh.
        return {uid: {k: v for k, v in entry.items() if not k.startswith("_")}
                for uid, entry in data.items()}

    def _save(self) -> None:
        with self.lock:
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.pods, indent=1))
            tmp.replace(self.state_path)

    @staticmethod
    def _record(entry: dict[str, Any]) -> Record | None:
        if not entry.get("pid"):
            return None
        return Record(int(entry["pid"]), int(entry["start_ticks"]), str(entry["argv0"]))

    # ------------------------------------------------------------------ loop
    def run(self, interval: float = 1.0) -> None:
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        while not stopped.is_set():
            try:
                self.sync()
                self.healthy_at = time.monotonic()
            except Exception:  # the API server restarting must not end the node
                log.exception("sync failed; retrying")
            stopped.wait(interval)
        # Leaving does not stop the pods' processes: a restarted agent adopts them, and
        # `lab down` stops them by the PIDs in state.json.
        self._save()

    def sync(self) -> None:
        pods = self.api.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={NODE}").items
        seen = set()
        for pod in pods:
            uid = pod.metadata.uid
            seen.add(uid)
            try:
                self.reconcile(pod)
            except Exception as exc:
                log.exception("pod %s/%s", pod.metadata.namespace, pod.metadata.name)
                self._event(pod, "Warning", "LabNodeAgentError", str(exc)[:500])
        for uid in [u for u in self.pulls if u not in seen]:
            del self.pulls[uid]
        for uid in [u for u in self.pods if u not in seen and u not in self.stopping]:
            # Force-deleted from the API: nothing left to report to; stop the process.
            self._terminate(uid, None, 30.0)
        for uid in [u for u in self.stopping if u not in seen]:
            # Force-deleted while stopping (`kubectl delete --grace-period=0 --force`): as the
            # kubelet does, kill now rather than wait out the grace period.
            self._kill_by(uid, time.monotonic())
        self._kill_overdue()
        self._save()

    def _kill_by(self, uid: str, when: float) -> None:
        with self.lock:
            if uid in self.kill_at and when < self.kill_at[uid]:
                self.kill_at[uid] = when

    def _kill_overdue(self) -> None:
        """SIGKILL stopping processes whose (possibly shortened) grace period is over; the
        stopping thread then sees them gone and removes the pod."""
        now = time.monotonic()
        with self.lock:
            due = [uid for uid, when in self.kill_at.items() if when <= now]
        for uid in due:
            record = self._record(self.pods.get(uid, {}))
            if record is not None and record.alive():
                log.warning("killing %s (grace period over or shortened)",
                            self.pods.get(uid, {}).get("name", uid))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(record.pid, signal.SIGKILL)

    def reconcile(self, pod: Any) -> None:
        uid = pod.metadata.uid
        if uid in self.stopping:
            if pod.metadata.deletion_grace_period_seconds is not None:  # maybe shortened
                self._kill_by(uid, self.pods.get(uid, {}).get("_stop_began", 0.0)
                              + float(pod.metadata.deletion_grace_period_seconds))
            return
        if pod.metadata.deletion_timestamp is not None:
            grace = float(pod.metadata.deletion_grace_period_seconds
                          or pod.spec.termination_grace_period_seconds or 30)
            self._terminate(uid, pod, grace)
            return
        entry = self.pods.get(uid)
        record = self._record(entry) if entry else None
        if entry is None or record is None or not record.alive():
            pull = self.pulls.get(uid)
            if pull is not None and time.monotonic() < pull["retry_at"]:
                self._report_waiting(pod, "ImagePullBackOff", pull["message"])
                return
            self._start(pod, restart=entry is not None and record is not None)
            entry = self.pods.get(uid)
            if entry is None:
                return
        self._sync_files(pod, entry)
        if self._alive_by_probe(pod, entry):
            self._report(pod, entry)

    # ------------------------------------------------------------------ start
    def _start(self, pod: Any, restart: bool) -> None:
        uid, ns, name = pod.metadata.uid, pod.metadata.namespace, pod.metadata.name
        ip = pod_ip(pod)
        if ip is None:
            raise ValueError(f"pod {ns}/{name} has no {IP_ANNOTATION} annotation: the lab"
                             " node runs only pods whose template gives their IP")
        for other_uid, other in self.pods.items():
            rec = self._record(other)
            if other_uid != uid and other.get("ip") == ip and rec is not None and rec.alive():
                return  # the previous pod with this IP is still shutting down: wait
        container = pod.spec.containers[0]
        try:
            binary = self._binary(container.image)
        except ImagePullError as exc:
            self._pull_failed(pod, str(exc))
            return
        if self.pulls.pop(uid, None) is not None:
            self._event(pod, "Normal", "Pulled", f"Successfully pulled image"
                        f" \"{container.image}\" (the lab's build {binary})")
        env = self._env(pod, container, ip)
        pod_dir = self.root / "pods" / ns / name
        pod_dir.mkdir(parents=True, exist_ok=True)
        mounts = self._volumes(pod, pod_dir)
        if mounts is None:
            return  # a claim is not bound yet
        host_paths = {}
        for mount in container.volume_mounts or []:
            if mount.name in mounts:
                host = mounts[mount.name]
                if mount.sub_path:
                    host = host / mount.sub_path
                host_paths[mount.mount_path.rstrip("/")] = host
        argv = [binary]
        rewrite = None if self.podnet else ip
        for arg in [*(container.command or [])[1:], *(container.args or [])]:
            argv.append(self._arg(arg, env, host_paths, rewrite))
        launcher: list[str] = []
        if self.podnet is not None:
            self.podnet.ensure_host(ip)
            launcher = self.podnet.exec_prefix(ip)
        previous = self.pods.get(uid, {})
        restarts = int(previous.get("restarts", 0)) + (1 if restart else 0)
        log_path = self.root / "logs" / f"{ns}_{name}.log"
        record = start(argv, log_path, env=env, cwd=pod_dir, prefix=launcher)
        self.pods[uid] = {
            **record.to_dict(), "namespace": ns, "name": name, "ip": ip,
            "restarts": restarts, "started_at": _now(), "log": str(log_path),
            "ready_url": self._ready_url(pod, ip),
            "ports": {p.name or str(p.container_port): p.container_port
                      for p in container.ports or []}, "image": container.image,
            "files": previous.get("files", {}), "pending": {},
            "grace": float(pod.spec.termination_grace_period_seconds or 30),
        }
        log.info("started %s/%s on %s: pid %d", ns, name, ip, record.pid)
        self._event(pod, "Normal", "Started", f"started {Path(binary).name} on {ip}"
                    f" (pid {record.pid})")

    def _binary(self, image: str) -> str:
        """The lab's build that `image` names, or ImagePullError as a registry would answer."""
        key = image_key(image)
        binary = self.images.get(key)
        if binary is None:
            repository = key.rsplit(":", 1)[0]
            tags = sorted(k.rsplit(":", 1)[1] for k in self.images
                          if k.rsplit(":", 1)[0] == repository)
            known = (f"the lab builds {repository} at {', '.join(tags)}" if tags else
                     f"the lab builds no {repository}")
            raise ImagePullError(f"rpc error: {key}: manifest unknown ({known})")
        if not Path(binary).exists():
            raise ImagePullError(f"{key}: the lab is still building it (cache path {binary})")
        return binary

    def _pull_failed(self, pod: Any, message: str) -> None:
        """ErrImagePull now, ImagePullBackOff until the retry; the delay doubles each time."""
        uid = pod.metadata.uid
        pull = self.pulls.setdefault(uid, {"failures": 0})
        pull["failures"] += 1
        delay = min(PULL_BACKOFF_MAX, PULL_BACKOFF_FIRST * 2 ** (pull["failures"] - 1))
        pull.update(retry_at=time.monotonic() + delay, message=message)
        image = pod.spec.containers[0].image
        log.warning("%s/%s: failed to pull %s: %s; retry in %.0f s", pod.metadata.namespace,
                    pod.metadata.name, image, message, delay)
        self._event(pod, "Warning", "Failed", f"Failed to pull image \"{image}\": {message}")
        self._event(pod, "Normal", "BackOff", f"Back-off pulling image \"{image}\"")
        self._report_waiting(pod, "ErrImagePull", message)

    def _report_waiting(self, pod: Any, reason: str, message: str) -> None:
        """Pending with the container waiting, as a kubelet reports a failed pull."""
        container = pod.spec.containers[0]
        current = next((c.state.waiting.reason for c in pod.status.container_statuses or []
                        if c.state and c.state.waiting), None)
        if pod.status.phase == "Pending" and current == reason:
            return
        now = _now()
        body = {"status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now,
                 "reason": "ContainersNotReady"},
                {"type": "Ready", "status": "False", "lastTransitionTime": now,
                 "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "",
                "ready": False, "started": False, "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            }],
        }}
        self.api.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    @staticmethod
    def _env(pod: Any, container: Any, ip: str) -> dict[str, str]:
        fields = {"metadata.name": pod.metadata.name,
                  "metadata.namespace": pod.metadata.namespace,
                  "status.podIP": ip, "spec.nodeName": NODE}
        env: dict[str, str] = {}
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), var.value)
            elif var.value_from and var.value_from.field_ref:
                env[var.name] = fields.get(var.value_from.field_ref.field_path, "")
        return env

    @staticmethod
    def _arg(arg: str, env: dict[str, str], host_paths: dict[str, Path],
             ip: str | None) -> str:
        """`arg` with `$(VAR)` expanded and mount paths mapped to the pod's directories; in
        reduced mode (`ip` given: no namespace of its own) `0.0.0.0:` becomes the pod IP."""
        arg = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), arg)
        if host_paths:
            # A mount path where a path starts (after `=`, `,`, a quote or at the start), in
            # one pass so that a host path is never rewritten again.
            alternatives = "|".join(re.escape(p) for p in sorted(host_paths, key=len,
                                                                  reverse=True))
            pattern = re.compile(rf"(?<![\w./-])({alternatives})(?=/|$|,|\")")
            arg = pattern.sub(lambda m: str(host_paths[m.group(1)]), arg)
        return arg.replace("0.0.0.0:", f"{ip}:") if ip else arg

    def _volumes(self, pod: Any, pod_dir: Path) -> dict[str, Path] | None:
        mounts: dict[str, Path] = {}
        for volume in pod.spec.volumes or []:
            if volume.config_map or volume.secret:
                path = pod_dir / "volumes" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                for key, data in self._volume_data(pod, volume).items():
                    _write_atomic(path / key, data)
                mounts[volume.name] = path
            elif volume.persistent_volume_claim:
                claim = self.api.read_namespaced_persistent_volume_claim(
                    volume.persistent_volume_claim.claim_name, pod.metadata.namespace)
                if claim.status.phase != "Bound" or not claim.spec.volume_name:
                    self._event(pod, "Warning", "FailedMount",
                                f"claim {claim.metadata.name} is {claim.status.phase}")
                    return None
                pv = self.api.read_persistent_volume(claim.spec.volume_name)
                if pv.spec.host_path is None:
                    raise ValueError(f"PersistentVolume {pv.metadata.name} is not a hostPath"
                                     " volume: the lab node mounts only those")
                path = Path(pv.spec.host_path.path)
                path.mkdir(parents=True, exist_ok=True)
                mounts[volume.name] = path
            elif volume.empty_dir is not None:
                path = pod_dir / "volumes" / volume.name
                path.mkdir(parents=True, exist_ok=True)
                mounts[volume.name] = path
        return mounts

    def _volume_data(self, pod: Any, volume: Any) -> dict[str, bytes]:
        ns = pod.metadata.namespace
        if volume.config_map:
            cm = self.api.read_namespaced_config_map(volume.config_map.name, ns)
            return {k: v.encode() for k, v in (cm.data or {}).items()}
        secret = self.api.read_namespaced_secret(volume.secret.secret_name, ns)
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    # ------------------------------------------------------------------ running pods
    def _sync_files(self, pod: Any, entry: dict[str, Any]) -> None:
        """Write changed ConfigMap keys to the files the process reads, after the delay."""
        pod_dir = self.root / "pods" / pod.metadata.namespace / pod.metadata.name
        annotations = pod.metadata.annotations or {}
        delay = float(annotations.get(DELAY_ANNOTATION, self.default_delay))
        now = time.time()
        for volume in pod.spec.volumes or []:
            if not volume.config_map:
                continue
            for key, data in self._volume_data(pod, volume).items():
                target = pod_dir / "volumes" / volume.name / key
                digest = hashlib.sha256(data).hexdigest()
                current = target.read_bytes() if target.exists() else b""
                if hashlib.sha256(current).hexdigest() == digest:
                    entry["pending"].pop(str(target), None)
                    continue
                pending = entry["pending"].get(str(target))
                if pending is None or pending["sha256"] != digest:
                    entry["pending"][str(target)] = {"sha256": digest, "due": now + delay}
                    pending = entry["pending"][str(target)]
                if now >= pending["due"]:
                    _write_atomic(target, data)
                    entry["pending"].pop(str(target), None)
                    log.info("updated %s of %s/%s", key, pod.metadata.namespace,
                             pod.metadata.name)

    def _alive_by_probe(self, pod: Any, entry: dict[str, Any]) -> bool:
        """The container's httpGet livenessProbe, as the kubelet runs it: after
        initialDelaySeconds, every periodSeconds; failureThreshold failures in a row restart
        the process (a program can stay up with its listeners gone, e.g. after a bind error).
        Returns False when it just restarted it."""
        probe = pod.spec.containers[0].liveness_probe
        if probe is None or probe.http_get is None:
            return True
        if entry.get("_restarting"):
            return False
        now = time.monotonic()
        started = entry.setdefault("_probe_start", now)
        if now - started < float(probe.initial_delay_seconds or 0):
            return True
        if now - entry.get("_probe_last", 0.0) < float(probe.period_seconds or 10):
            return True
        entry["_probe_last"] = now
        port = probe.http_get.port
        container = pod.spec.containers[0]
        if isinstance(port, str) and not port.isdigit():
            port = next((p.container_port for p in container.ports or [] if p.name == port), 0)
        if self._ready(f"http://{entry['ip']}:{port}{probe.http_get.path or '/'}"):
            entry["_probe_failures"] = 0
            return True
        entry["_probe_failures"] = entry.get("_probe_failures", 0) + 1
        if entry["_probe_failures"] < int(probe.failure_threshold or 3):
            return True
        record = self._record(entry)
        log.warning("%s/%s failed its liveness probe %d times: restarting it",
                    pod.metadata.namespace, pod.metadata.name, entry["_probe_failures"])
        self._event(pod, "Warning", "Unhealthy", "liveness probe failed"
                    f" {entry['_probe_failures']} times; restarting the container")
        if record is not None:  # in the background: the loop keeps serving the other pods
            entry["_restarting"] = True
            grace = float(probe.termination_grace_period_seconds  # the probe's own, if set
                          or pod.spec.termination_grace_period_seconds or 30)
            threading.Thread(target=stop, args=(record, grace), daemon=True).start()
        return False

    @staticmethod
    def _ready_url(pod: Any, ip: str) -> str:
        """The container's httpGet readinessProbe at the pod IP ("" without one)."""
        container = pod.spec.containers[0]
        probe = container.readiness_probe
        if probe is None or probe.http_get is None:
            return ""
        port = probe.http_get.port
        if isinstance(port, str) and not port.isdigit():
            port = next((p.container_port for p in container.ports or [] if p.name == port), 0)
        return f"http://{ip}:{port}{probe.http_get.path or '/'}"

    @staticmethod
    def _ready(url: str) -> bool:
        if not url:
            return True
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                return bool(200 <= response.status < 400)
        except OSError:
            return False

    def _report(self, pod: Any, entry: dict[str, Any]) -> None:
        """Patch the pod's status when what the node sees differs from it."""
        ready = self._ready(entry.get("ready_url", ""))
        container = pod.spec.containers[0]
        status = pod.status
        current_ready = any(c.type == "Ready" and c.status == "True"
                            for c in status.conditions or [])
        current_restarts = next((c.restart_count for c in status.container_statuses or []), -1)
        current_started = next(
            (c.state.running.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
             for c in status.container_statuses or [] if c.state and c.state.running), "")
        if (status.phase == "Running" and status.pod_ip == entry["ip"]
                and current_ready == ready and current_restarts == entry["restarts"]
                and current_started == entry["started_at"]):
            return
        flag = "True" if ready else "False"
        now = _now()
        body = {"status": {
            "phase": "Running", "hostIP": entry["ip"], "podIP": entry["ip"],
            "podIPs": [{"ip": entry["ip"]}], "startTime": (status.start_time and
            status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ")) or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "",
                "containerID": f"lab://{entry['pid']}", "ready": ready, "started": True,
                "restartCount": entry["restarts"],
                "state": {"running": {"startedAt": entry["started_at"]}},
            }],
        }}
        self.api.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    # ------------------------------------------------------------------ stop
    def _terminate(self, uid: str, pod: Any | None, grace: float) -> None:
        """Stop in the background (a receiver may take minutes to flush), then delete."""
        self.stopping.add(uid)
        entry = self.pods.get(uid, {})
        began = time.monotonic()
        entry["_stop_began"] = began
        with self.lock:
            self.kill_at[uid] = began + grace

        def work() -> None:
            try:
                record = self._record(entry)
                if record is not None and record.alive():
                    began = time.monotonic()
                    stop(record, grace)
                    log.info("stopped %s/%s in %.1f s", entry.get("namespace"),
                             entry.get("name"), time.monotonic() - began)
                if pod is not None:
                    from kubernetes.client import V1DeleteOptions, V1Preconditions
                    from kubernetes.client.exceptions import ApiException

                    with contextlib.suppress(ApiException):
                        self.api.delete_namespaced_pod(
                            pod.metadata.name, pod.metadata.namespace,
                            body=V1DeleteOptions(grace_period_seconds=0,
                                                 preconditions=V1Preconditions(uid=uid)))
            finally:
                with self.lock:
                    self.pods.pop(uid, None)
                    self.stopping.discard(uid)
                    self.kill_at.pop(uid, None)
                # The pod's namespace stays (its address answers "connection refused", as the
                # old lab's loopback address did): a namespace and veth made anew for the
                # next pod with this IP would leave peers' ARP caches and connections to the
                # old one dangling for seconds. `lab down` removes them all.
                self._save()

        threading.Thread(target=work, daemon=True).start()

    def _event(self, pod: Any, kind: str, reason: str, message: str) -> None:
        from kubernetes.client.exceptions import ApiException

        body = {
            "metadata": {"generateName": f"{pod.metadata.name}.",
                         "namespace": pod.metadata.namespace},
            "involvedObject": {"kind": "Pod", "name": pod.metadata.name,
                               "namespace": pod.metadata.namespace,
                               "uid": pod.metadata.uid, "apiVersion": "v1"},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "lab-node-agent", "host": NODE},
            "firstTimestamp": _now(), "lastTimestamp": _now(), "count": 1,
        }
        with contextlib.suppress(ApiException):
            self.api.create_namespaced_event(pod.metadata.namespace, body)


def _write_atomic(path: Path, data: bytes) -> None:
    """As the kubelet swaps a ConfigMap volume: the reader sees the old or the new file."""
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _serve_health(agent: NodeAgent, address: str) -> None:
    host, port = address.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fresh = time.monotonic() - agent.healthy_at < 15
            self.send_response(200 if fresh else 503)
            self.end_headers()
            self.wfile.write(b"ok\n" if fresh else b"no successful sync in 15 s\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


# ---------------------------------------------------------------- logs (the kubelet's endpoint)
# `process.start` opens each run of a pod's process with this line; the runs of one pod
# (restarts) follow each other in its log file, as the kubelet keeps the current and previous
# container's log.
_RUN_MARKER = re.compile(rb"^--- (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) ")
# Where a line says when it was written: logfmt ts= / time= (Thanos, Prometheus, Alertmanager)
# or a leading ISO time (OpenSearch's "[2026-...]").
_LINE_TIME = re.compile(rb"(?:\bts=|\btime=|^\[?)\"?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)"
                        rb"(Z|[+-]\d\d:?\d\d)?")


def _line_time(line: bytes, default: float | None) -> float | None:
    match = _LINE_TIME.search(line[:200])
    if not match:
        return default
    stamp = match.group(1).decode()
    zone = (match.group(2) or b"Z").decode().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(stamp[:26] + zone).timestamp()
    except ValueError:
        return default


def container_runs(data: bytes) -> list[list[tuple[float | None, bytes]]]:
    """A pod's log file as its runs (oldest first), each a list of (time, line)."""
    runs: list[list[tuple[float | None, bytes]]] = []
    current: list[tuple[float | None, bytes]] | None = None
    when: float | None = None
    for line in data.splitlines(keepends=True):
        marker = _RUN_MARKER.match(line)
        if marker:
            current = []
            runs.append(current)
            when = datetime.fromisoformat(marker.group(1).decode()).replace(
                tzinfo=UTC).timestamp()
            continue
        if current is None:
            if not line.strip():
                continue
            current = []
            runs.append(current)
        when = _line_time(line, when)
        current.append((when, line))
    for run in runs:  # the blank line `process.start` leaves before the next run's marker
        while run and not run[-1][1].strip():
            run.pop()
    return runs


def select_log(data: bytes, query: dict[str, list[str]]) -> tuple[bytes, int]:
    """The lines the kubelet would return for this PodLogOptions query, and the file offset
    to follow from. Raises ValueError naming a bad parameter."""
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    runs = container_runs(data)
    previous = one("previous") in ("true", "1")
    if previous and len(runs) < 2:
        raise ValueError("previous terminated container not found")
    lines = runs[-2] if previous else (runs[-1] if runs else [])
    since: float | None = None
    if one("sinceSeconds") is not None:
        since = time.time() - int(str(one("sinceSeconds")))
    if one("sinceTime") is not None:
        since = datetime.fromisoformat(str(one("sinceTime")).replace("Z", "+00:00")).timestamp()
    if since is not None:
        lines = [(t, line) for t, line in lines if t is not None and t >= since]
    tail = one("tailLines")
    if tail is not None and tail != "all" and int(tail) >= 0:
        lines = lines[len(lines) - int(tail):] if int(tail) else []
    stamps = one("timestamps") in ("true", "1")
    out = b"".join(
        (datetime.fromtimestamp(t or 0, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()
         if stamps else b"") + line for t, line in lines)
    limit = one("limitBytes")
    if limit is not None:
        out = out[:int(limit)]
    return out, len(data)


def _serve_container_logs(agent: NodeAgent, address: str, cert: Path, key: Path) -> None:
    """HTTPS /containerLogs/NS/POD/CONTAINER on the node's kubelet port, for the API server's
    pods/log. Binds the node's lab address only; the lab's API server is its one client."""
    host, port = address.rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                return self._fail(404, f"not served by the lab node agent: {url.path}")
            _, ns, name, _container = parts  # the lab's pods run one container each
            path = agent.root / "logs" / f"{ns}_{name}.log"
            if not path.exists():
                return self._fail(404, f"no logs for pod {ns}/{name} on {NODE}")
            query = urllib.parse.parse_qs(url.query)
            try:
                body, offset = select_log(path.read_bytes(), query)
            except ValueError as exc:
                return self._fail(400, str(exc))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                self._chunk(body)
                if query.get("follow", [""])[0] in ("true", "1"):
                    self._follow(path, offset, ns, name)
                self.wfile.write(b"0\r\n\r\n")  # the end of the chunked body
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _follow(self, path: Path, offset: int, ns: str, name: str) -> None:
            """New output until the client goes or the pod's process ends for good."""
            while any(e.get("namespace") == ns and e.get("name") == name
                      for e in list(agent.pods.values())):
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
                if data:
                    offset += len(data)
                    self._chunk(data)
                time.sleep(0.5)

        def _chunk(self, data: bytes) -> None:
            if not data:  # an empty chunk would end the body
                return
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _fail(self, code: int, message: str) -> None:
            body = message.encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serving_certificate(root: Path, ip: str) -> tuple[Path, Path]:
    """A self-signed serving certificate for the node's kubelet port (made once). The lab's API
    server does not verify the kubelet's certificate: no --kubelet-certificate-authority."""
    cert, key = root / "kubelet.crt", root / "kubelet.key"
    if not cert.exists() or not key.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "3650",
                        "-subj", f"/CN={NODE}", "-addext", f"subjectAltName=IP:{ip}"],
                       check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="the agent's directory")
    parser.add_argument("--images", type=Path, required=True,
                        help="JSON: image repository:tag -> local binary")
    parser.add_argument("--healthz", required=True, help="address:port of /healthz")
    parser.add_argument("--kubelet-address", default="",
                        help="address:port of the kubelet's /containerLogs (pods/log)")
    parser.add_argument("--pod-network", default="",
                        help="the lab's /24 as a.b.c: each pod in a network namespace of its"
                             " own on the lab's bridge (root); empty: reduced mode, 127/8")
    parser.add_argument("--configmap-delay", type=float, default=0.0,
                        help="seconds before a changed ConfigMap reaches the pods' files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    agent = NodeAgent(args.kubeconfig, args.root, json.loads(args.images.read_text()),
                      args.configmap_delay,
                      PodNetwork(args.pod_network) if args.pod_network else None)
    _serve_health(agent, args.healthz)
    if args.kubelet_address:
        ip = args.kubelet_address.rsplit(":", 1)[0]
        _serve_container_logs(agent, args.kubelet_address, *serving_certificate(args.root, ip))
    agent.run()


if __name__ == "__main__":
    main()
