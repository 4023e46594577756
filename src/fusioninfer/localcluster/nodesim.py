"""Node simulator: fake GPU nodes whose Pods become Running/Ready without a kubelet (the KWOK idea).

The local control plane has no kubelet and no container runtime, so without this nothing would
ever run: the real kube-scheduler binds Pods to Nodes, and then they stay Pending forever. The
simulator plays every kubelet at once:

- it registers N Nodes with capacity/allocatable cpu, memory, pods and `nvidia.com/gpu`, and keeps
  their Ready condition and their Lease in `kube-node-lease` fresh;
- it watches Pods bound to its Nodes and writes their status (via `pods/status`) the way a kubelet
  would: Running, PodScheduled/Initialized/ContainersReady/Ready, a pod IP from 10.244.<node>.x,
  container statuses; honouring readiness gates;
- Pods being deleted are force-deleted (grace period 0), since no kubelet will ever confirm that
  their containers stopped;
- for tests, a Pod can be made to fail, stay unready, stay pending, succeed, or become ready only
  after a delay, with the annotation `fusioninfer.io/simulate` (`fail`, `unready`, `pending`,
  `succeed`, `run`) and `fusioninfer.io/simulate-delay` (seconds), or with label-selector rules
  given to the simulator (changeable at run time with `set_rules`).

Run it in-process (`NodeSimulator(...).start()` runs it in a background thread with its own event
loop; `await sim.run()` in an existing loop) or as a process:
`python -m fusioninfer.localcluster.nodesim --kubeconfig K --nodes N --gpus-per-node G`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger("fusioninfer.nodesim")

SIMULATE_ANNOTATION = "fusioninfer.io/simulate"
SIMULATE_DELAY_ANNOTATION = "fusioninfer.io/simulate-delay"
SIMULATED_NODE_LABEL = "fusioninfer.io/simulated-node"
FIELD_MANAGER = "fusioninfer-nodesim"
GPU_RESOURCE = "nvidia.com/gpu"
NODE_LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.20.2"
# Conditions the simulator owns on a Pod; any other condition (readiness gates, conditions other
# controllers add) is preserved untouched.
OWN_POD_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
STARTUP_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


class PodMode(StrEnum):
    """What the simulated kubelet does with a Pod."""

    RUN = "run"  # Running and Ready (default)
    FAIL = "fail"  # restartPolicy Never: phase Failed; otherwise Running but crash-looping, not ready
    UNREADY = "unready"  # Running, containers started but never Ready (failing readiness probe)
    PENDING = "pending"  # stays Pending with containers in ContainerCreating
    SUCCEED = "succeed"  # phase Succeeded, containers exited 0


@dataclass(frozen=True)
class SimulationRule:
    """Pods whose labels contain all of `selector` get `mode` (unless their annotation says otherwise)."""

    selector: Mapping[str, str]
    mode: PodMode

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.selector.items())


@dataclass(frozen=True)
class NodeSpec:
    """Capacity and identity of the simulated nodes."""

    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    gpus: int = 8
    gpu_product: str = "NVIDIA-A100-SXM4-80GB"
    labels: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Pure functions (unit-tested): what a node and a pod status look like
# --------------------------------------------------------------------------------------------


def rfc3339(when: dt.datetime) -> str:
    """Kubernetes' `Time` format (seconds precision, Z)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: dt.datetime) -> str:
    """Kubernetes' `MicroTime` format (used by Lease.renewTime)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index}"


def node_host_ip(index: int) -> str:
    """The simulated node's InternalIP (10.240.0.0/16: never a real route)."""
    return f"10.240.{index // 250}.{index % 250 + 1}"


def pod_ip(node_index: int, slot: int) -> str:
    """Pod IP number `slot` (0-based) on node `node_index`: 10.244.<node>.<slot+2> (a /24 per node,
    like a typical pod CIDR allocation)."""
    if not 0 <= slot < 253:
        raise ValueError("a simulated node holds at most 253 pod IPs")
    return f"10.244.{node_index % 256}.{slot + 2}"


def node_manifest(name: str, index: int, spec: NodeSpec, prefix: str) -> dict[str, Any]:
    """The Node object (metadata and spec) the simulator server-side-applies."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "fusioninfer-sim",
        SIMULATED_NODE_LABEL: prefix,
        **(
            {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": spec.gpu_product,
                "nvidia.com/gpu.count": str(spec.gpus),
            }
            if spec.gpus > 0
            else {}
        ),
        **spec.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "fusioninfer.io/simulated-index": str(index)},
        },
        "spec": {},
    }


def node_status(index: int, spec: NodeSpec, now: dt.datetime, *, started: dt.datetime) -> dict[str, Any]:
    """A healthy kubelet's Node status: capacity, Ready, no pressure, addresses, node info."""
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": str(spec.pods),
        "ephemeral-storage": "1Ti",
        GPU_RESOURCE: str(spec.gpus),
    }
    beat, since = rfc3339(now), rfc3339(started)

    def cond(ctype: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": beat,
            "lastTransitionTime": since,
        }

    ident = hashlib.sha256(f"fusioninfer-node-{index}".encode()).hexdigest()[:32]
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status (fusioninfer node simulator)"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": node_host_ip(index)},
            {"type": "Hostname", "address": f"sim-{index}"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": ident,
            "systemUUID": ident,
            "bootID": ident,
            "kernelVersion": "6.1.0-fusioninfer-sim",
            "osImage": "FusionInfer simulated node",
            "containerRuntimeVersion": "containerd://1.7.0-sim",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def pod_mode(pod: Mapping[str, Any], rules: Sequence[SimulationRule] = ()) -> PodMode:
    """The annotation wins, then the first matching rule, else RUN. Unknown annotation values
    count as RUN so a typo cannot wedge a test silently: it is logged by the simulator."""
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(SIMULATE_ANNOTATION)
    if value:
        with contextlib.suppress(ValueError):
            return PodMode(value.strip().lower())
    labels = meta.get("labels") or {}
    for rule in rules:
        if rule.matches(labels):
            return rule.mode
    return PodMode.RUN


def pod_delay(pod: Mapping[str, Any], default: float = 0.0) -> float:
    """Seconds between first seeing a bound Pod and starting it (annotation or simulator default)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(SIMULATE_DELAY_ANNOTATION)
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _fake_digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def compute_pod_status(
    pod: Mapping[str, Any],
    *,
    mode: PodMode,
    host_ip: str,
    ip: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The full `status` a kubelet would report for `pod` in `mode`.

    Timestamps already in the Pod's status are kept while the state they describe is unchanged,
    so recomputing is idempotent and the simulator does not rewrite a settled Pod. Conditions the
    simulator does not own (readiness gates and the like) are carried over, and Ready honours
    readiness gates, as a kubelet does.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    current = pod.get("status") or {}
    uid = str(meta.get("uid", ""))
    stamp = rfc3339(now)
    restart_policy = spec.get("restartPolicy") or "Always"

    started = mode in (PodMode.RUN, PodMode.UNREADY, PodMode.FAIL, PodMode.SUCCEED)
    if mode is PodMode.FAIL:
        phase = "Failed" if restart_policy == "Never" else "Running"
    elif mode is PodMode.SUCCEED:
        phase = "Succeeded"
    elif mode is PodMode.PENDING:
        phase = "Pending"
    else:
        phase = "Running"
    containers_ready = mode is PodMode.RUN

    old_statuses = {c.get("name"): c for c in current.get("containerStatuses") or []}
    old_init_statuses = {c.get("name"): c for c in current.get("initContainerStatuses") or []}

    def container_status(container: Mapping[str, Any], init: bool) -> dict[str, Any]:
        name = str(container.get("name", ""))
        image = str(container.get("image", ""))
        old = (old_init_statuses if init else old_statuses).get(name) or {}
        old_state = old.get("state") or {}
        cid = "containerd://" + _fake_digest(uid, name)
        status: dict[str, Any] = {
            "name": name,
            "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{_fake_digest(image)}",
            "restartCount": 0,
            "ready": False,
            "started": False,
        }
        if init:
            if started:
                done = old_state.get("terminated") or {}
                status["state"] = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": done.get("startedAt", stamp),
                        "finishedAt": done.get("finishedAt", stamp),
                        "containerID": cid,
                    }
                }
                status["containerID"] = cid
            else:
                status["state"] = {"waiting": {"reason": "PodInitializing"}}
            return status
        if mode is PodMode.PENDING:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
            return status
        status["containerID"] = cid
        if mode is PodMode.SUCCEED:
            prev = old_state.get("terminated") or {}
            status["state"] = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "containerID": cid,
                    "startedAt": prev.get("startedAt", stamp),
                    "finishedAt": prev.get("finishedAt", stamp),
                }
            }
            return status
        if mode is PodMode.FAIL:
            prev_term = (old.get("lastState") or {}).get("terminated") or (old_state.get("terminated") or {})
            terminated = {
                "exitCode": 1,
                "reason": "Error",
                "containerID": cid,
                "message": "simulated failure (fusioninfer.io/simulate=fail)",
                "startedAt": prev_term.get("startedAt", stamp),
                "finishedAt": prev_term.get("finishedAt", stamp),
            }
            if restart_policy == "Never":
                status["state"] = {"terminated": terminated}
            else:
                status["restartCount"] = 3
                status["lastState"] = {"terminated": terminated}
                status["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 40s restarting failed container={name} pod={meta.get('name')}",
                    }
                }
            return status
        running = old_state.get("running") or {}
        status["state"] = {"running": {"startedAt": running.get("startedAt", stamp)}}
        status["started"] = True
        status["ready"] = containers_ready
        return status

    init_statuses = [container_status(c, True) for c in spec.get("initContainers") or []]
    statuses = [container_status(c, False) for c in spec.get("containers") or []]

    other_conditions = [c for c in current.get("conditions") or [] if c.get("type") not in OWN_POD_CONDITIONS]
    gate_types = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    gates_ok = all(any(c.get("type") == t and c.get("status") == "True" for c in other_conditions) for t in gate_types)
    ready = containers_ready and gates_ok and phase == "Running"
    old_conditions = {c.get("type"): c for c in current.get("conditions") or []}

    def condition(ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
        status = "True" if ok else "False"
        old = old_conditions.get(ctype) or {}
        cond: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime", stamp) if old.get("status") == status else stamp,
        }
        if not ok and reason:
            cond["reason"] = reason
        if not ok and message:
            cond["message"] = message
        return cond

    not_ready = [s["name"] for s in statuses if not s["ready"]]
    if phase == "Succeeded":
        ready_reason = "PodCompleted"
    elif not_ready:
        ready_reason = "ContainersNotReady"
    else:
        ready_reason = "ReadinessGatesNotReady"
    ready_message = (
        f"containers with unready status: [{' '.join(not_ready)}]"
        if not_ready
        else f"corresponding condition of pod readiness gate {gate_types} is not True"
    )
    conditions = [
        condition(
            "Initialized",
            started or not init_statuses,
            "ContainersNotInitialized",
            "containers with incomplete status: [" + " ".join(s["name"] for s in init_statuses) + "]",
        ),
        condition("Ready", ready, ready_reason, ready_message),
        condition(
            "ContainersReady",
            containers_ready and phase == "Running",
            "PodCompleted" if phase == "Succeeded" else "ContainersNotReady",
            None if phase == "Succeeded" else ready_message,
        ),
        condition("PodScheduled", True),
        *other_conditions,
    ]
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "startTime": current.get("startTime") or stamp,
        "containerStatuses": statuses,
    }
    if current.get("qosClass"):
        status["qosClass"] = current["qosClass"]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if ip and mode is not PodMode.PENDING:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    if mode is PodMode.FAIL and phase == "Failed":
        status["reason"] = "Error"
        status["message"] = "simulated failure (fusioninfer.io/simulate=fail)"
    return status


def status_signature(status: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """What decides whether a Pod's status must be rewritten (timestamps deliberately left out)."""
    status = status or {}

    def containers(key: str) -> tuple[Any, ...]:
        return tuple(
            sorted(
                (
                    str(c.get("name")),
                    bool(c.get("ready")),
                    bool(c.get("started")),
                    int(c.get("restartCount") or 0),
                    next(iter(c.get("state") or {}), None),
                    str(c.get("containerID") or ""),
                )
                for c in status.get(key) or []
            )
        )

    conditions = tuple(sorted((str(c.get("type")), str(c.get("status"))) for c in status.get("conditions") or []))
    return (
        status.get("phase"),
        status.get("podIP"),
        status.get("hostIP"),
        conditions,
        containers("containerStatuses"),
        containers("initContainerStatuses"),
    )


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class NodeSimulator:
    """Plays the kubelet of `nodes` fake nodes named `<name_prefix>-<i>` on one cluster.

    Thread use (tests): `sim.start()` returns once the Nodes exist; `sim.stop()`. Async use:
    `await sim.run()` until `sim.request_stop()` (or cancellation). Several simulators with
    different prefixes may share a cluster.
    """

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        nodes: int = 4,
        gpus_per_node: int = 8,
        node_spec: NodeSpec | None = None,
        name_prefix: str = "sim-node",
        rules: Sequence[SimulationRule] = (),
        start_delay: float = 0.0,
        heartbeat_interval: float = 10.0,
        delete_nodes_on_stop: bool = False,
    ) -> None:
        """`node_spec` overrides capacity (its `gpus` wins over `gpus_per_node` only when given).
        `start_delay` is the default seconds before a bound Pod starts (annotation overrides it).
        `delete_nodes_on_stop` removes the Nodes when the simulator stops (default: keep them,
        like kubelets that died)."""
        if nodes < 0:
            raise ValueError("nodes must be >= 0")
        self.kubeconfig = Path(kubeconfig)
        self.node_spec = node_spec or NodeSpec(gpus=gpus_per_node)
        self.node_names = [node_name(name_prefix, i) for i in range(nodes)]
        self.name_prefix = name_prefix
        self.start_delay = start_delay
        self.heartbeat_interval = heartbeat_interval
        self.delete_nodes_on_stop = delete_nodes_on_stop
        self._rules: list[SimulationRule] = list(rules)
        self._node_index = {n: i for i, n in enumerate(self.node_names)}
        self._started_at = _now()
        self._pods: dict[str, dict[str, Any]] = {}  # uid -> latest pod dict (pods on our nodes)
        self._first_seen: dict[str, float] = {}
        self._ips: dict[str, str] = {}  # uid -> pod IP
        self._used_slots: dict[str, set[int]] = {n: set() for n in self.node_names}
        self._force_deleted: set[str] = set()
        self._queue: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.stats = {"status_patches": 0, "force_deletes": 0, "watch_restarts": 0}

    # ----- public control ---------------------------------------------------------------------

    @property
    def rules(self) -> list[SimulationRule]:
        return list(self._rules)

    def set_rules(self, rules: Iterable[SimulationRule]) -> None:
        """Replace the label rules and re-evaluate every known Pod (thread-safe)."""
        self._rules = list(rules)
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self._requeue_all)

    def start(self, timeout: float = 30.0) -> NodeSimulator:
        """Run in a daemon thread with its own event loop; return once the Nodes are registered."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name=f"nodesim-{self.name_prefix}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"node simulator did not register its nodes within {timeout}s")
        if self._error is not None:
            self.stop()
            raise RuntimeError("node simulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the background thread (idempotent)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request_stop(self) -> None:
        """Ask `run()` to finish (thread-safe)."""
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def __enter__(self) -> NodeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as exc:
            self._error = exc
            log.exception("node simulator crashed")
        finally:
            self._ready.set()

    # ----- main loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Register the Nodes, then keep them alive and drive their Pods until stopped."""
        from lightkube import AsyncClient, KubeConfig

        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._queue = asyncio.Queue()
        client = AsyncClient(config=KubeConfig.from_file(self.kubeconfig), field_manager=FIELD_MANAGER)
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._register_nodes(client)
            self._ready.set()
            tasks = [
                asyncio.create_task(self._heartbeat_loop(client), name="nodesim-heartbeat"),
                asyncio.create_task(self._watch_loop(client), name="nodesim-watch"),
                asyncio.create_task(self._worker(client), name="nodesim-worker"),
            ]
            await self._stop_event.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.delete_nodes_on_stop:
                await self._delete_nodes(client)
            await client.close()
            self._loop = None

    async def _register_nodes(self, client: Any) -> None:
        """Create/refresh the Nodes (retrying while the apiserver is unreachable)."""
        delay = 0.2
        while True:
            try:
                for name in self.node_names:
                    await self._apply_node(client, name)
                    await self._renew_lease(client, name)
                return
            except Exception as exc:  # apiserver restarting or not up yet
                if self._stop_event is not None and self._stop_event.is_set():
                    return
                log.warning("registering nodes failed (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _apply_node(self, client: Any, name: str) -> None:
        from lightkube.resources.core_v1 import Node
        from lightkube.types import PatchType

        index = self._node_index[name]
        node = await client.patch(
            Node,
            name,
            node_manifest(name, index, self.node_spec, self.name_prefix),
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        # The TaintNodesByCondition admission plugin taints new Nodes not-ready; normally the node
        # lifecycle controller lifts that once the kubelet reports Ready, but there is none here.
        taints = [t.to_dict() for t in (node.spec.taints or [])] if node.spec else []
        kept = [t for t in taints if t.get("key") not in STARTUP_TAINTS]
        if kept != taints:
            await client.patch(Node, name, {"spec": {"taints": kept or None}}, patch_type=PatchType.MERGE)
        await self._patch_node_status(client, name)

    async def _patch_node_status(self, client: Any, name: str) -> None:
        from lightkube.resources.core_v1 import NodeStatus
        from lightkube.types import PatchType

        status = node_status(self._node_index[name], self.node_spec, _now(), started=self._started_at)
        await client.patch(NodeStatus, name, {"status": status}, patch_type=PatchType.MERGE)

    async def _renew_lease(self, client: Any, name: str) -> None:
        """Keep `kube-node-lease/<node>` fresh, as kubelets do (node health is judged by it)."""
        from lightkube import ApiError
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease
        from lightkube.resources.core_v1 import Namespace, Node
        from lightkube.types import PatchType

        lease: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_time(_now())},
        }
        try:
            node = await client.get(Node, name)
            lease["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.metadata.uid}
            ]
            await client.patch(
                Lease,
                name,
                lease,
                namespace=NODE_LEASE_NAMESPACE,
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            # kube-node-lease is created by the apiserver shortly after start; don't wait for it.
            with contextlib.suppress(ApiError):
                await client.create(Namespace(metadata=ObjectMeta(name=NODE_LEASE_NAMESPACE)))

    async def _delete_nodes(self, client: Any) -> None:
        from lightkube.resources.core_v1 import Node

        for name in self.node_names:
            with contextlib.suppress(Exception):
                await client.delete(Node, name)

    async def _heartbeat_loop(self, client: Any) -> None:
        from lightkube import ApiError

        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for name in self.node_names:
                try:
                    await self._patch_node_status(client, name)
                    await self._renew_lease(client, name)
                except ApiError as exc:
                    if exc.status.code == 404:  # somebody deleted our node: register it again
                        with contextlib.suppress(Exception):
                            await self._apply_node(client, name)
                    else:
                        log.warning("heartbeat for %s failed: %s", name, exc)
                except Exception as exc:
                    log.warning("heartbeat for %s failed: %s", name, exc)

    async def _watch_loop(self, client: Any) -> None:
        """List+watch all Pods; keep the cache of Pods on our nodes; enqueue changes. Any error
        (apiserver restart, 410 Gone) leads to a fresh list, which also sweeps Pods deleted
        while we were not watching."""
        from lightkube.resources.core_v1 import Pod

        while True:
            try:
                listing = client.list(Pod, namespace="*")
                seen: set[str] = set()
                async for pod in listing:
                    uid = self._observe(pod.to_dict())
                    if uid:
                        seen.add(uid)
                for uid in set(self._pods) - seen:
                    self._forget(uid)
                async for event, pod in client.watch(Pod, namespace="*", resource_version=listing.resourceVersion):
                    data = pod.to_dict()
                    if event == "DELETED":
                        self._forget(str((data.get("metadata") or {}).get("uid")))
                    else:
                        self._observe(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["watch_restarts"] += 1
                log.info("pod watch interrupted (%s); re-listing", exc)
                await asyncio.sleep(0.5)

    def _observe(self, pod: dict[str, Any]) -> str | None:
        """Cache `pod` if it is bound to one of our nodes and enqueue it; return its uid."""
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self._node_index:
            return None
        uid = str(pod["metadata"]["uid"])
        self._pods[uid] = pod
        self._enqueue(uid)
        return uid

    def _forget(self, uid: str) -> None:
        pod = self._pods.pop(uid, None)
        self._first_seen.pop(uid, None)
        self._force_deleted.discard(uid)
        ip = self._ips.pop(uid, None)
        if pod is not None and ip is not None:
            node = pod["spec"]["nodeName"]
            self._used_slots[node].discard(int(ip.rsplit(".", 1)[1]) - 2)

    def _enqueue(self, uid: str) -> None:
        if self._queue is not None and uid not in self._queued:
            self._queued.add(uid)
            self._queue.put_nowait(uid)

    def _requeue_all(self) -> None:
        for uid in list(self._pods):
            self._enqueue(uid)

    async def _worker(self, client: Any) -> None:
        assert self._queue is not None
        while True:
            uid = await self._queue.get()
            self._queued.discard(uid)
            try:
                await self._reconcile(client, uid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reconciling pod %s failed: %s; retrying", uid, exc)
                assert self._loop is not None
                self._loop.call_later(0.5, self._enqueue, uid)

    def _allocate_ip(self, uid: str, node: str, current: str | None) -> str:
        if uid in self._ips:
            return self._ips[uid]
        index = self._node_index[node]
        slots = self._used_slots[node]
        if current and current.startswith(f"10.244.{index % 256}."):
            slot = int(current.rsplit(".", 1)[1]) - 2
        else:
            slot = next(s for s in range(253) if s not in slots)
        slots.add(slot)
        self._ips[uid] = ip = pod_ip(index, slot)
        return ip

    async def _reconcile(self, client: Any, uid: str) -> None:
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Pod, PodStatus
        from lightkube.types import PatchType

        pod = self._pods.get(uid)
        if pod is None:
            return
        meta = pod["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        if meta.get("deletionTimestamp"):
            if uid in self._force_deleted:
                return  # already done; a finalizer holds it. Never delete by name twice: the
                # name may belong to a new Pod (StatefulSet/LWS) by now.
            self._force_deleted.add(uid)
            try:
                await client.delete(Pod, name, namespace=namespace, grace_period=0)
                self.stats["force_deletes"] += 1
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
            return
        annotation = (meta.get("annotations") or {}).get(SIMULATE_ANNOTATION)
        if annotation and annotation.strip().lower() not in {m.value for m in PodMode}:
            log.warning("pod %s/%s: unknown %s=%r, treating as 'run'", namespace, name, SIMULATE_ANNOTATION, annotation)
        mode = pod_mode(pod, self._rules)
        delay = pod_delay(pod, self.start_delay)
        loop = asyncio.get_running_loop()
        first = self._first_seen.setdefault(uid, loop.time())
        remaining = first + delay - loop.time()
        already_started = (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")
        if remaining > 0 and mode is not PodMode.PENDING and not already_started:
            loop.call_later(remaining, self._enqueue, uid)
            mode = PodMode.PENDING
        node = pod["spec"]["nodeName"]
        current = pod.get("status") or {}
        ip = self._allocate_ip(uid, node, current.get("podIP"))
        desired = compute_pod_status(pod, mode=mode, host_ip=node_host_ip(self._node_index[node]), ip=ip, now=_now())
        if status_signature(current) == status_signature(desired):
            return
        # metadata.uid makes the patch fail (422) instead of landing on a new Pod of the same name.
        patch = {"metadata": {"uid": uid}, "status": desired}
        try:
            result = await client.patch(PodStatus, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
            self.stats["status_patches"] += 1
            if uid in self._pods:
                self._pods[uid] = result.to_dict()
        except ApiError as exc:
            if exc.status.code not in (404, 409, 422):
                raise


# --------------------------------------------------------------------------------------------
# `python -m fusioninfer.localcluster.nodesim`
# --------------------------------------------------------------------------------------------


def parse_rule(text: str) -> SimulationRule:
    """`key=value[,key=value...]:mode`, e.g. `app=broken:fail` (used by `--rule`)."""
    selector_text, _, mode_text = text.rpartition(":")
    if not selector_text:
        raise argparse.ArgumentTypeError(f"rule {text!r}: expected key=value[,key=value]:mode")
    selector: dict[str, str] = {}
    for part in selector_text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"rule {text!r}: bad selector part {part!r}")
        selector[key.strip()] = value.strip()
    try:
        mode = PodMode(mode_text.strip().lower())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rule {text!r}: mode must be one of {[m.value for m in PodMode]}") from exc
    return SimulationRule(selector=selector, mode=mode)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fusioninfer.localcluster.nodesim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--cpu", default="32")
    parser.add_argument("--memory", default="256Gi")
    parser.add_argument("--max-pods", type=int, default=110)
    parser.add_argument("--name-prefix", default="sim-node")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds before a bound pod starts")
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument(
        "--rule",
        type=parse_rule,
        action="append",
        default=[],
        help="label rule `key=value[,key=value]:mode` (mode: run|fail|unready|pending|succeed)",
    )
    parser.add_argument(
        "--fail-selector",
        type=lambda s: parse_rule(f"{s}:fail"),
        action="append",
        default=[],
        dest="rule",
        help="shorthand for --rule SELECTOR:fail",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise
    sim = NodeSimulator(
        args.kubeconfig,
        nodes=args.nodes,
        node_spec=NodeSpec(cpu=args.cpu, memory=args.memory, pods=args.max_pods, gpus=args.gpus_per_node),
        name_prefix=args.name_prefix,
        rules=args.rule,
        start_delay=args.start_delay,
        heartbeat_interval=args.heartbeat_interval,
    )

    async def _main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sim.request_stop)
        log.info("simulating %d node(s) with %d GPU(s) each", args.nodes, args.gpus_per_node)
        await sim.run()

    asyncio.run(_main())


if __name__ == "__main__":
    main()
