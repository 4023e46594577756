"""The InferenceService reconciler: level-triggered, idempotent, one field manager.

`reconcile(key)` reads the InferenceService from the cache, computes the full desired set of
children with the pure builders, server-side-applies what differs from the cached live object,
prunes children it owns that are no longer desired, and writes status once, only if it changed.
Every decision is made from the spec and the caches, so a restart at any point loses nothing;
the things kept between reconciles are `controller.desired`'s memo of pure functions (parse,
build, hash, match), keyed by all of their inputs, and `controller.echoes`' versions of our own
writes (so that their watch echoes wake no reconcile): both change how often and how fast,
never what.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from lightkube import ApiError, AsyncClient

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.labels import LABEL_SERVICE
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, InferenceService
from fusioninfer.builders import BuildOptions, Capabilities
from fusioninfer.builders.kinds import CHILD_KINDS, ChildKind
from fusioninfer.controller import conditions as C
from fusioninfer.controller.desired import DesiredCache
from fusioninfer.controller.echoes import OwnWrites
from fusioninfer.controller.events import EventRecorder, EventType, HeldEvents
from fusioninfer.controller.status import Observed, compute_status, invalid_status
from fusioninfer.kube.owners import is_controlled_by
from fusioninfer.kube.types import Obj, ObjList
from fusioninfer.runtime.apply import apply, apply_status, delete
from fusioninfer.runtime.loop import ObjectKey, Result

log = logging.getLogger(__name__)

FIELD_MANAGER = "fusioninfer"
# Events are sent in the background, at most this many at once.
EVENT_CONCURRENCY = 4
# Long enough to outlast a burst of a few thousand new services on a small apiserver (at N=2000
# a 30 s bound released a thousand Events in the middle of the burst), short enough that a
# `kubectl describe` soon shows what was done.
NORMAL_EVENT_MAX_DELAY = 120.0
# How long the work queue must stay idle (nothing waiting, nothing processed) before held
# Normal Events go: longer than the gap between two services of a burst, short enough that a
# single `kubectl apply` shows its Events at once.
EVENT_LULL = 0.5


class ReconcileError(Exception):
    """Some children could not be applied or pruned; retried with backoff."""


class ObjectCache(Protocol):
    """The read side of an informer (or of a group of them, one per namespace)."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...
    def list(self, namespace: str | None = None, labels: dict[str, str] | None = None) -> ObjList: ...
    def by_owner(self, uid: str) -> ObjList: ...


@dataclass
class Caches:
    """Where the reconciler reads the world from. Filled by the operator (`operator.py`)."""

    services: ObjectCache
    pods: ObjectCache | None = None
    # Child caches by kind name; a kind whose API is not installed has none.
    children: dict[str, ObjectCache] = field(default_factory=dict)

    def child(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = self.children.get(kind)
        return informer.get(namespace, name) if informer else None


def _api_message(exc: ApiError) -> str:
    status = getattr(exc, "status", None)
    message = getattr(status, "message", None) or str(exc)
    code = getattr(status, "code", None)
    return f"{message} (HTTP {code})" if code else str(message)


class InferenceServiceReconciler:
    def __init__(
        self,
        client: AsyncClient,
        caches: Caches,
        capabilities: Callable[[], Capabilities],
        *,
        options: BuildOptions | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self.client = client
        self.caches = caches
        self.capabilities = capabilities
        self.options = options or BuildOptions()
        self.events = events or EventRecorder(client)
        # Parse/build/hash/match answers per service, reused while their inputs are unchanged.
        self.memo = DesiredCache()
        # The versions our writes returned: their watch echoes wake no reconcile (`echoes.py`).
        self.own_writes = OwnWrites()
        # Events go in the background; Normal ones wait for a lull (the operator sets `held.lull`
        # to its work queue's `wait_idle`), so that under load the apiserver serves children and
        # statuses first.
        self.held = HeldEvents(self.events, max_delay=NORMAL_EVENT_MAX_DELAY, concurrency=EVENT_CONCURRENCY)

    def _emit_soon(self, raw: Obj, type_: EventType, reason: str, message: str) -> None:
        """Record an Event without making the reconcile wait for it, as client-go's recorder
        does: the child is already applied; the Event is advisory and must not delay the status.
        A Normal Event is held for the next lull (`HeldEvents`); a Warning goes at once."""
        if type_ == "Normal":
            self.held.hold(raw, reason, message)
        else:
            self.held.send_now(raw, type_, reason, message)

    async def flush_events(self) -> None:
        """Send every Event held or queued so far, without waiting for a lull (tests, shutdown)."""
        await self.held.flush()

    async def reconcile(self, key: ObjectKey) -> Result:
        raw = self.caches.services.get(key.namespace, key.name)
        if raw is None:
            self.memo.forget(key.namespace, key.name)
            return Result()  # deleted: its children go with it (ownerReferences + garbage collector)
        meta = raw.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return Result()
        previous: Obj = raw.get("status") or {}
        generation = meta.get("generation")

        def options_for(isvc: InferenceService) -> BuildOptions:
            autoscaled = any(r.autoscaling for r in isvc.spec.roles)
            return BuildOptions(
                capabilities=self.capabilities(),
                owner_uid=meta["uid"],
                epp_image=self.options.epp_image,
                pd_epp_image=self.options.pd_epp_image,
                routing_sidecar_image=self.options.routing_sidecar_image,
                live_replicas=self._live_replicas(key) if autoscaled else {},
            )

        try:
            wanted = self.memo.desired(raw, options_for)
        except InvalidSpec as exc:
            # Children are left as they are: a typo must not tear down a serving model.
            new = invalid_status(exc.errors, generation, previous)
            await self._write_status(raw, previous, new)
            return Result()  # not retried: the next edit of the spec enqueues it again
        isvc, result = wanted.isvc, wanted.result
        uid = meta["uid"]
        observed = Observed()
        desired_keys: set[tuple[str, str]] = set()
        changed: dict[str, list[str]] = {"Created": [], "Updated": []}
        for desired in result.objects:
            kind, name = desired["kind"], desired["metadata"]["name"]
            desired_keys.add((kind, name))
            live = self.caches.child(kind, key.namespace, name)
            if live is not None and not is_controlled_by(live, uid):
                message = f"{kind} {name} already exists and is not owned by this InferenceService; not touching it"
                observed.apply_errors.append(message)
                continue
            diff = self.memo.difference(raw, desired, live)
            if diff is None:
                assert live is not None
                observed.children[(kind, name)] = live
                continue
            try:
                applied = await self._written(desired, apply(self.client, desired, FIELD_MANAGER))
            except ApiError as exc:
                message = f"applying {kind} {name}: {_api_message(exc)}"
                observed.apply_errors.append(message)
                await self.events.emit(raw, "Warning", "ApplyFailed", message)
                if live is not None:
                    observed.children[(kind, name)] = live
                continue
            observed.children[(kind, name)] = applied
            verb = "Created" if live is None else "Updated"
            log.info("%s %s %s (%s)", verb.lower(), kind, name, diff)
            changed[verb].append(f"{kind} {name}")
        # One Event per verb and reconcile, not one per child (a new service with a router has
        # nine children), sent in the background: each is a write the apiserver must serve.
        for verb, what in changed.items():
            if what:
                self._emit_soon(raw, "Normal", verb, f"{verb} {', '.join(what)}")

        await self._prune(raw, uid, desired_keys, observed)

        if self.caches.pods is not None:
            observed.pods = self.caches.pods.list(namespace=key.namespace, labels={LABEL_SERVICE: key.name})
        routes = self.caches.children.get("HTTPRoute")
        if routes is not None and isvc.router is not None:
            observed.peer_routes = [
                r for r in routes.list(namespace=key.namespace)
                if ((r.get("metadata") or {}).get("labels") or {}).get(LABEL_SERVICE) != key.name
            ]  # fmt: skip
        new = compute_status(isvc, result, observed, previous)
        await self._write_status(raw, previous, new)
        if observed.apply_errors:
            raise ReconcileError("; ".join(observed.apply_errors))
        return Result()

    async def _written(self, manifest: Obj, write: Awaitable[Obj]) -> Obj:
        """Await `write` of `manifest`, telling `own_writes` so that its echo wakes nothing."""
        self.own_writes.expect(manifest)
        try:
            written = await write
        except BaseException:
            self.own_writes.abandon(manifest)
            raise
        self.own_writes.record(manifest, written)
        return written

    def _live_replicas(self, key: ObjectKey) -> dict[str, int]:
        """spec.replicas of this service's workloads as the cluster has them (autoscaler-set)."""
        out: dict[str, int] = {}
        for kind in ("Deployment", "LeaderWorkerSet"):
            informer = self.caches.children.get(kind)
            if informer is None:
                continue
            for obj in informer.list(namespace=key.namespace, labels={LABEL_SERVICE: key.name}):
                replicas = (obj.get("spec") or {}).get("replicas")
                if isinstance(replicas, int):
                    out[str(obj["metadata"]["name"])] = replicas
        return out

    async def _prune(self, raw: Obj, uid: str, desired: set[tuple[str, str]], observed: Observed) -> None:
        namespace = raw["metadata"]["namespace"]
        for child_kind in CHILD_KINDS:
            informer = self.caches.children.get(child_kind.kind)
            if informer is None:
                continue
            for live in informer.by_owner(uid):
                name = live["metadata"]["name"]
                if (child_kind.kind, name) in desired or not is_controlled_by(live, uid):
                    continue
                if live["metadata"].get("deletionTimestamp"):
                    continue
                await self._delete(raw, child_kind, name, namespace, observed)

    async def _delete(self, raw: Obj, kind: ChildKind, name: str, namespace: str, observed: Observed) -> None:
        try:
            await delete(self.client, kind.api_version, kind.kind, name, namespace)
        except ApiError as exc:
            message = f"pruning {kind.kind} {name}: {_api_message(exc)}"
            observed.apply_errors.append(message)
            await self.events.emit(raw, "Warning", "PruneFailed", message)
            return
        log.info("pruned %s %s", kind.kind, name)
        self._emit_soon(raw, "Normal", "Pruned", f"Deleted {kind.kind} {name}: no longer desired")

    async def _write_status(self, raw: Obj, previous: Obj, new: Obj) -> None:
        if new == previous:
            return
        meta = raw["metadata"]
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": new,
        }
        try:
            await self._written(body, apply_status(self.client, body, FIELD_MANAGER))
        except ApiError as exc:
            if getattr(getattr(exc, "status", None), "code", None) == 404:
                return  # deleted meanwhile
            raise
        await self._announce_transitions(raw, previous.get("conditions"), new.get("conditions"))

    async def _announce_transitions(self, raw: Obj, before: list[Obj] | None, after: list[Obj] | None) -> None:
        """Events for news only: a problem appearing (or changing), Ready flipping. Never on a quiet pass."""
        for cond in after or []:
            old = C.find(before, cond["type"])
            flipped = old is None or old.get("status") != cond["status"]
            reworded = old is not None and old.get("message") != cond["message"]
            problem = cond["status"] == ("True" if cond["type"] == C.DEGRADED else "False")
            # Also: route not accepted (or its model claimed by another service), gang not
            # schedulable; a Warning when it happens or its reason changes, never on a quiet pass.
            watched = (C.VALID, C.PREREQUISITES_MET, C.DEGRADED, C.ROUTE_READY, C.GANG_SCHEDULED)
            if cond["type"] in watched and problem and (flipped or reworded):
                await self.events.emit(
                    raw, "Warning", cond["reason"], f"{cond['type']}={cond['status']}: {cond['message']}"
                )
            elif cond["type"] == C.READY and old is not None and flipped:
                message = f"Ready={cond['status']}: {cond['message']}"
                if cond["status"] == "True":
                    self._emit_soon(raw, "Normal", cond["reason"], message)
                else:
                    await self.events.emit(raw, "Warning", cond["reason"], message)
            elif cond["type"] == C.READY and old is None and cond["status"] == "True":
                self._emit_soon(raw, "Normal", cond["reason"], f"Ready=True: {cond['message']}")
