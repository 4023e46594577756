"""The pod runner: real processes behind the local cluster's pods, at the pods' own IPs.

KWOK plays the kubelet but runs nothing. For the pods that take part in serving, this runner
starts what their containers would run, the way a kubelet would start the container:

- an endpoint picker container of the GIE image runs the GIE picker built from its Go module,
  with the container's args and env (downward API resolved), its ConfigMap volumes written to
  disk and the args' paths pointed at them, and in-cluster access through the cluster's
  kubeconfig. All pickers share this machine's network namespace, so each gets its own gRPC,
  health and metrics ports (`--grpc-port`, `--grpc-health-port`, `--metrics-port`), which the
  local gateway reads from `pickers`; everything else is what the operator rendered.
- a model-server container (vLLM, SGLang or llm-d simulator image) runs the STAND-IN model
  server (`modelserver`), bound to the pod's IP and the port of the container's own command line.
- anything else (an llm-d picker, which cannot be built here; LWS worker pods) runs nothing, and
  the reason is kept in `unrunnable` for the gateway to report.

Only pods whose IP lies in the cluster's pod block (nodes created with a pod CIDR, kwok.py) are
run: nothing else owns its address. A process that exits is started again after a back-off, as
a kubelet restarts a container; a pod that goes away (or stops Running) has its processes ended.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import ConfigMap, Pod

from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.components import pick_free_ports
from fusioninfer_dev.localcluster.kube_loop import Loop, list_all, meta
from fusioninfer_dev.localcluster.modelserver.engine_args import parse_engine_args
from fusioninfer_dev.localcluster.processes import die_with_parent, stop_child

log = logging.getLogger("fusioninfer.podrunner")

Key = tuple[str, str]  # (namespace, pod name)
GIE_PICKER_IMAGE = "gateway-api-inference-extension/epp"
LLMD_PICKER_IMAGE = "llm-d-inference-scheduler"
MODEL_SERVER_IMAGES = ("vllm", "sglang", "llm-d-inference-sim")
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
RESTART_BACKOFF = 5.0


def container_role(image: str) -> str:
    """What the runner does for a container of `image`: gie-picker, llmd-picker, model-server, or ''."""
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in image or ":" in image else image
    if repo.endswith(GIE_PICKER_IMAGE):
        return "gie-picker"
    if LLMD_PICKER_IMAGE in repo:
        return "llmd-picker"
    if any(name in repo for name in MODEL_SERVER_IMAGES):
        return "model-server"
    return ""


def resolve_env(container: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, str]:
    """The container's literal env and its downward-API fields (name, namespace, IP)."""
    fields = {
        "metadata.name": str(meta(pod).get("name", "")),
        "metadata.namespace": str(meta(pod).get("namespace", "")),
        "status.podIP": str((pod.get("status") or {}).get("podIP", "")),
        "spec.nodeName": str((pod.get("spec") or {}).get("nodeName", "")),
    }
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
        ref = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if ref in fields:
            env[str(item["name"])] = fields[ref]
    return env


def config_map_mounts(container: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, str]:
    """mountPath -> ConfigMap name, for the container's ConfigMap volumes."""
    volumes = {
        str(v["name"]): str(v["configMap"]["name"])
        for v in (pod.get("spec") or {}).get("volumes") or []
        if isinstance(v.get("configMap"), dict)
    }
    return {
        str(m["mountPath"]): volumes[str(m["name"])]
        for m in container.get("volumeMounts") or []
        if str(m.get("name")) in volumes
    }


PORT_FLAGS = ("--grpc-port", "--grpc-health-port", "--metrics-port")


def picker_argv(
    binary: Path,
    args: Sequence[str],
    *,
    mounts: Mapping[str, Path],
    kubeconfig: Path,
    ports: tuple[int, int, int],
) -> list[str]:
    """The picker's command: the container's args with mounted paths pointed at local copies,
    its port flags replaced by this machine's free ports, and the cluster's kubeconfig."""
    out = [str(binary)]
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg in PORT_FLAGS:
            skip_next = True
            continue
        if arg.split("=", 1)[0] in PORT_FLAGS:
            continue
        for mount_path, local in mounts.items():
            arg = arg.replace(mount_path.rstrip("/") + "/", f"{local}/")
        out.append(arg)
    grpc, health, metrics = ports
    return [
        *out,
        f"--kubeconfig={kubeconfig}",
        f"--grpc-port={grpc}",
        f"--grpc-health-port={health}",
        f"--metrics-port={metrics}",
    ]


def secure_serving(args: Sequence[str]) -> bool:
    """The GIE picker serves gRPC over TLS (self-signed) unless `--secure-serving=false`."""
    value = "true"
    for index, arg in enumerate(args):
        if arg.startswith("--secure-serving="):
            value = arg.split("=", 1)[1]
        elif arg == "--secure-serving" and index + 1 < len(args) and args[index + 1] in ("true", "false"):
            value = args[index + 1]
    return value.lower() != "false"


def in_block(ip: str, block: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(block)
    except ValueError:
        return False


class MissingVolume(Exception):
    """A ConfigMap a container mounts does not exist (yet): the container cannot start."""


@dataclass(frozen=True)
class PickerEndpoint:
    """Where a picker pod's process serves (on 127.0.0.1: pickers bind every address)."""

    grpc_port: int
    health_port: int
    metrics_port: int
    tls: bool


@dataclass
class Running:
    """One container's process."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    picker: PickerEndpoint | None = None
    metrics_url: str | None = None  # a model server's /metrics, as Prometheus would scrape it

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        stop_child(self.proc, timeout)


@dataclass(frozen=True)
class Timing:
    """The stand-in model servers' latencies (ms), as the simulator's flags of the same names."""

    time_to_first_token_ms: float = 50.0
    inter_token_latency_ms: float = 20.0
    max_num_seqs: int = 5


@dataclass
class PodRunner:
    """Keeps one process per runnable container of every Running pod in `pod_block`."""

    client: AsyncClient
    kubeconfig: Path
    workdir: Path
    pod_block: str
    gie_picker: Path | None
    base_env: Mapping[str, str]
    namespace: str | None = None
    timing: Timing = field(default_factory=Timing)
    running: dict[tuple[str, str, str], Running] = field(default_factory=dict)  # (uid, ns/pod, container)
    unrunnable: dict[Key, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loop = Loop("pod-runner", self.client, self.reconcile_all, [Pod], namespace=self.namespace, resync=2.0)

    async def run(self) -> None:
        try:
            await self.loop.run()
        finally:
            self.stop_all()

    def stop(self) -> None:
        self.loop.stop()

    def stop_all(self) -> None:
        for process in self.running.values():
            process.stop()
        self.running.clear()

    @property
    def pickers(self) -> dict[Key, PickerEndpoint]:
        """Serving picker processes by pod."""
        out: dict[Key, PickerEndpoint] = {}
        for (_uid, pod, _container), process in self.running.items():
            if process.picker is not None and process.alive():
                namespace, name = pod.split("/", 1)
                out[(namespace, name)] = process.picker
        return out

    @property
    def model_servers(self) -> dict[Key, str]:
        """The /metrics URL of every live model-server process, by pod."""
        out: dict[Key, str] = {}
        for (_uid, pod, _container), process in self.running.items():
            if process.metrics_url is not None and process.alive():
                namespace, name = pod.split("/", 1)
                out[(namespace, name)] = process.metrics_url
        return out

    async def reconcile_all(self) -> None:
        pods = [p for p in await list_all(self.client, Pod, self.namespace) if self._runnable_pod(p)]
        wanted: set[tuple[str, str, str]] = set()
        unrunnable: dict[Key, str] = {}
        for pod in pods:
            name, namespace = str(meta(pod)["name"]), str(meta(pod)["namespace"])
            uid = str(meta(pod)["uid"])
            for container in (pod.get("spec") or {}).get("containers") or []:
                role = container_role(str(container.get("image", "")))
                key = (uid, f"{namespace}/{name}", str(container["name"]))
                if role == "llmd-picker":
                    unrunnable[(namespace, name)] = (
                        f"the llm-d endpoint picker ({container.get('image')}) cannot be built on this machine "
                        "(its Go dependency github.com/llm-d/llm-d-kv-cache is not served), so it does not run "
                        "on the local cluster"
                    )
                    continue
                if role == "gie-picker" and self.gie_picker is None:
                    unrunnable[(namespace, name)] = "the GIE endpoint picker binary is not built"
                    continue
                if not role:
                    continue
                wanted.add(key)
                if key not in self.running:
                    try:
                        process = await self._prepare(role, pod, container)
                    except MissingVolume as exc:
                        log.info("pod %s waits: %s", key[1], exc)  # as a kubelet does; next pass retries
                        wanted.discard(key)
                        continue
                    self.running[key] = process
                    process.start()
                    log.info("started %s for pod %s (container %s)", role, key[1], key[2])
        self.unrunnable = unrunnable
        for key in list(self.running):
            if key not in wanted:
                self.running.pop(key).stop()
                log.info("stopped the process of pod %s (container %s)", key[1], key[2])
        now = time.monotonic()
        for key, process in self.running.items():
            if not process.alive() and now - process.started_at > RESTART_BACKOFF:
                process.restarts += 1
                log.warning("process of pod %s (container %s) exited; restarting", key[1], key[2])
                process.start()

    def _runnable_pod(self, pod: Mapping[str, Any]) -> bool:
        status = pod.get("status") or {}
        if meta(pod).get("deletionTimestamp") or status.get("phase") != "Running":
            return False
        if str((meta(pod).get("labels") or {}).get(LWS_WORKER_INDEX, "0")) != "0":
            return False  # an LWS worker: the leader serves, workers only join its group
        return in_block(str(status.get("podIP") or ""), self.pod_block)

    async def _prepare(self, role: str, pod: Obj, container: Mapping[str, Any]) -> Running:
        name, namespace = str(meta(pod)["name"]), str(meta(pod)["namespace"])
        base = self.workdir / namespace / name / str(container["name"])
        base.mkdir(parents=True, exist_ok=True)
        env = {**self.base_env, **resolve_env(container, pod)}
        log_path = self.workdir / "logs" / f"{namespace}.{name}.{container['name']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [str(a) for a in container.get("args") or []]
        if role == "gie-picker":
            assert self.gie_picker is not None
            mounts = await self._materialise(config_map_mounts(container, pod), namespace, base)
            ports = pick_free_ports(3)
            argv = picker_argv(
                self.gie_picker, args, mounts=mounts, kubeconfig=self.kubeconfig, ports=(ports[0], ports[1], ports[2])
            )
            endpoint = PickerEndpoint(ports[0], ports[1], ports[2], tls=secure_serving(args))
            return Running(argv=argv, env=env, log=log_path, picker=endpoint)
        command = [str(c) for c in container.get("command") or []]
        pod_ip = (pod.get("status") or {})["podIP"]
        engine = parse_engine_args([*command, *args], str(container.get("image", "")))
        argv = [
            sys.executable,
            "-m",
            "fusioninfer_dev.localcluster.modelserver",
            f"--bind={pod_ip}",
            f"--pod={name}",
            f"--namespace={namespace}",
            f"--image={container.get('image', '')}",
            f"--time-to-first-token-ms={self.timing.time_to_first_token_ms}",
            f"--inter-token-latency-ms={self.timing.inter_token_latency_ms}",
            f"--max-num-seqs={self.timing.max_num_seqs}",
            "--",
            *command,
            *args,
        ]
        metrics = f"http://{pod_ip}:{engine.port}/metrics" if engine.metrics_enabled else None
        return Running(argv=argv, env=env, log=log_path, metrics_url=metrics)

    async def _materialise(self, mounts: Mapping[str, str], namespace: str, base: Path) -> dict[str, Path]:
        """Write each mounted ConfigMap's keys as files, as the kubelet projects them."""
        out: dict[str, Path] = {}
        for index, (mount_path, config_map) in enumerate(sorted(mounts.items())):
            target = base / f"volume-{index}"
            target.mkdir(parents=True, exist_ok=True)
            try:
                obj = await self.client.get(ConfigMap, config_map, namespace=namespace)
            except ApiError as exc:
                raise MissingVolume(f"ConfigMap {namespace}/{config_map}: {exc}") from exc
            for key, value in (obj.data or {}).items():
                (target / key).write_text(value)
            out[mount_path] = target
        return out
