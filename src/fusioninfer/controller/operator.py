"""Wiring: informers for InferenceServices, their children, their pods and the prerequisite
CRDs; the controller with N workers; and the process around it (metrics, health, leader
election) used by `fusioninfer run` and by the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Pod

from fusioninfer.api.labels import LABEL_MANAGED_BY, LABEL_SERVICE, MANAGED_BY
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL
from fusioninfer.builders import BuildOptions, Capabilities
from fusioninfer.builders.context import OPTIONAL_APIS
from fusioninfer.builders.kinds import CHILD_KINDS, ChildKind
from fusioninfer.controller.discovery import CRD_NAMES, capabilities_from, slim_crd
from fusioninfer.controller.pod_view import pod_changed, slim_pod
from fusioninfer.controller.reconciler import EVENT_LULL, Caches, InferenceServiceReconciler
from fusioninfer.kube.types import Obj, ObjList
from fusioninfer.runtime.gcpause import GcPauses
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.leader import LeaderElectionConfig, LeaderElector
from fusioninfer.runtime.loop import Controller, ObjectKey
from fusioninfer.runtime.metrics import MetricsServer, default_metrics
from fusioninfer.runtime.registry import default_registry
from fusioninfer.runtime.version import fetch_server_version
from fusioninfer.runtime.workqueue import LOW

log = logging.getLogger(__name__)

CONTROLLER_NAME = "inferenceservice"
MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


class InformerGroup:
    """One informer per watched namespace (or one for all), read as one cache."""

    def __init__(self, informers: Sequence[Informer]):
        self.informers = list(informers)

    def get(self, namespace: str | None, name: str) -> Obj | None:
        for inf in self.informers:
            if inf.namespace in (None, namespace):
                found = inf.get(namespace, name)
                if found is not None:
                    return found
        return None

    def list(self, namespace: str | None = None, labels: dict[str, str] | None = None) -> ObjList:
        return [o for inf in self.informers for o in inf.list(namespace=namespace, labels=labels)]

    def by_owner(self, uid: str) -> ObjList:
        return [o for inf in self.informers for o in inf.by_owner(uid)]

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self.informers)


@dataclass
class OperatorConfig:
    namespaces: list[str] | None = None  # None: every namespace
    workers: int = 4
    build_options: BuildOptions = field(default_factory=BuildOptions)
    resync_period: float | None = 600.0


def _resource_for(kind: ChildKind) -> type[Any]:
    return (
        default_registry.register(kind.api_version, kind.kind, plural=kind.plural, namespaced=True)
        if (kind.capability is not None)
        else default_registry.resolve(kind.api_version, kind.kind)
    )


class Operator:
    """The InferenceService controller and everything it watches."""

    def __init__(
        self, client: AsyncClient, config: OperatorConfig | None = None, *, watch_client: AsyncClient | None = None
    ) -> None:
        self.client = client
        # Informers list and watch through `watch_client` (default: `client`). Apart, every write
        # goes through a connection pool holding only the few connections writes use: the pool
        # walks all of its connections and requests on every request, the dozen open watches
        # included, and probes each idle socket as it goes.
        self.watch_client = watch_client or client
        self.config = config or OperatorConfig()
        namespaces: list[str | None] = list(self.config.namespaces) if self.config.namespaces else [None]
        self._namespaces = namespaces
        isvc_resource = default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)
        self.services = InformerGroup(
            [
                Informer(self.watch_client, isvc_resource, namespace=ns, resync_period=self.config.resync_period)
                for ns in namespaces
            ]
        )
        self.pods = InformerGroup(
            [Informer(self.watch_client, Pod, namespace=ns, labels=MANAGED, transform=slim_pod) for ns in namespaces]
        )
        self.crds = Informer(self.watch_client, CustomResourceDefinition, transform=slim_crd, name="crds")
        self.children: dict[str, InformerGroup] = {}
        self.caches = Caches(services=self.services, pods=self.pods)
        self.reconciler = InferenceServiceReconciler(
            client, self.caches, self.capabilities, options=self.config.build_options
        )
        self.controller = Controller(CONTROLLER_NAME, self.reconciler.reconcile, workers=self.config.workers)
        self.reconciler.held.lull = partial(self.controller.queue.wait_idle, EVENT_LULL)
        own_writes = self.reconciler.own_writes
        for inf in self.services.informers:
            self.controller.watch_primary(inf, echo=own_writes.is_echo)
        for inf in self.pods.informers:
            self.controller.watch_mapped(inf, _service_of, changed=pod_changed)
        self.crds.add_event_handler(
            on_add=self._on_crd_event, on_update=lambda _old, new: self._on_crd_event(new), on_delete=self._on_crd_event
        )
        self._kind_lock = asyncio.Lock()
        self.server_version: tuple[int, int] | None = None

    # -- prerequisites ------------------------------------------------------------------------------
    def installed(self) -> Capabilities:
        """Optional APIs whose CRDs are established (ignores whether we watch them yet)."""
        return capabilities_from(self.crds.list())

    def capabilities(self) -> Capabilities:
        """Optional APIs that are installed AND whose children we already cache."""
        installed = self.installed()
        ready: dict[str, bool] = {}
        for name in OPTIONAL_APIS:
            kinds = [k for k in CHILD_KINDS if k.capability == name]
            ready[name] = getattr(installed, name) and all(
                k.kind in self.children and self.children[k.kind].has_synced() for k in kinds
            )
        return Capabilities.of(ready, self.server_version)

    def _on_crd_event(self, obj: Obj) -> None:
        if obj.get("metadata", {}).get("name") in CRD_NAMES and self.crds.has_synced():
            task = asyncio.ensure_future(self._sync_child_informers())
            task.add_done_callback(_log_failure)

    async def _watch_prerequisites(self) -> None:
        """Watch the prerequisite CRDs, then the children of every kind whose API is installed."""
        self.crds.start()
        await self.crds.wait_synced()
        await self._sync_child_informers()

    async def _sync_child_informers(self) -> None:
        """Watch the children of every installed kind; then reconcile every service again."""
        async with self._kind_lock:
            installed = self.installed()
            started = []
            for kind in CHILD_KINDS:
                wanted = kind.capability is None or getattr(installed, kind.capability)
                if wanted and kind.kind not in self.children:
                    group = InformerGroup(
                        [
                            Informer(self.watch_client, _resource_for(kind), namespace=ns, labels=MANAGED)
                            for ns in self._namespaces
                        ]
                    )
                    for inf in group.informers:
                        self.controller.watch_owned(inf, API_VERSION, KIND, echo=self.reconciler.own_writes.is_echo)
                        inf.start()
                    self.children[kind.kind] = group
                    self.caches.children[kind.kind] = group
                    started.append(group)
                elif not wanted and kind.kind in self.children:
                    group = self.children.pop(kind.kind)
                    self.caches.children.pop(kind.kind, None)
                    for inf in group.informers:
                        await inf.stop()
                    log.info("stopped watching %s: its CRD is gone", kind.kind)
            for group in started:
                for inf in group.informers:
                    await inf.wait_synced()
        if started:
            self.enqueue_all()

    def enqueue_all(self) -> None:
        """Every service once more, at LOW priority: a prerequisite appeared, nobody edited them."""
        for obj in self.services.list():
            self.controller.queue.add(ObjectKey.of(obj), LOW)

    # -- watching alone (the benchmark) -------------------------------------------------------------
    async def start_watches(self) -> None:
        """Start every informer the reconciler reads and wait until all have synced, reconciling
        nothing. The benchmark's `--lb-watching` run measures with it what the operator's
        watches alone cost the apiserver (`docs/benchmarks.md`)."""
        await self._watch_prerequisites()
        for inf in self.controller.informers:
            inf.start()
        for inf in self.controller.informers:
            await inf.wait_synced()

    async def stop_watches(self) -> None:
        for inf in (*self.controller.informers, self.crds):
            await inf.stop()

    # -- running ------------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.controller.ready() and self.crds.has_synced()

    async def run(self) -> None:
        """Start watching, then reconcile until cancelled."""
        self.server_version = await fetch_server_version(self.client)
        log.info("apiserver version %s", ".".join(map(str, self.server_version or ("unknown",))))
        try:
            await self._watch_prerequisites()
            await self.controller.run()
        finally:
            # Events still being sent in the background (see the reconciler): a few seconds at most.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reconciler.flush_events(), timeout=5.0)
            for group in self.children.values():
                for inf in group.informers:
                    await inf.stop()
            await self.crds.stop()


def _service_of(pod: Obj) -> Iterable[ObjectKey]:
    meta = pod.get("metadata") or {}
    service = (meta.get("labels") or {}).get(LABEL_SERVICE)
    return (ObjectKey(meta.get("namespace") or "", service),) if service else ()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("watching prerequisite APIs failed: %s", task.exception())


@dataclass
class ProcessConfig:
    """What `fusioninfer run` adds around the operator."""

    metrics_bind: tuple[str, int] | None = ("0.0.0.0", 8080)
    health_bind: tuple[str, int] | None = ("0.0.0.0", 8081)
    leader_election: bool = True
    lease_name: str = "fusioninfer-controller"
    lease_namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


async def run_process(client: AsyncClient, operator: Operator, process: ProcessConfig) -> None:
    """Serve metrics and health, elect a leader, run the operator while leading."""
    elector: LeaderElector | None = None
    if process.leader_election:
        elector = LeaderElector(
            client,
            LeaderElectionConfig(
                lease_name=process.lease_name,
                lease_namespace=process.lease_namespace,
                lease_duration=process.lease_duration,
                renew_deadline=process.renew_deadline,
                retry_period=process.retry_period,
            ),
            on_started_leading=lambda: log.info("became leader"),
            on_new_leader=lambda who: log.info("current leader: %s", who),
        )

    def ready() -> bool:
        # A follower is ready: it is up and waiting for the lease, as controller-runtime's
        # replicas are. Otherwise a rolling update of the operator could never finish (the new
        # pod would wait for readiness, the old one would keep the lease).
        if elector is not None and not elector.is_leader:
            return True
        return operator.ready()

    servers: list[MetricsServer] = []
    if process.metrics_bind is not None:
        servers.append(MetricsServer(*process.metrics_bind, ready_check=ready))
    if process.health_bind is not None and process.health_bind != process.metrics_bind:
        servers.append(MetricsServer(*process.health_bind, ready_check=ready))
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(GcPauses(default_metrics().gc_pause_seconds))
        for server in servers:
            await stack.enter_async_context(server)
            log.info("serving /metrics, /healthz, /readyz on %s:%d", server.host, server.port)
        if elector is None:
            await operator.run()
            return
        log.info("waiting for leadership of lease %s/%s", process.lease_namespace, process.lease_name)
        await elector.run(operator.run)
