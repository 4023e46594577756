"""A level-triggered controller: informers feed keys into a work queue; N workers reconcile them.

Semantics follow controller-runtime:

* ``reconcile(key)`` is given only an `ObjectKey`; it must read the current state itself (from
  the informers' caches) and converge. It is never run twice at once for the same key (the work
  queue guarantees it), and a key that changes while being reconciled is reconciled again after.
* Return `Result()` (or None) for success: the key's backoff is forgotten.
  ``Result(requeue_after=s)``: come back in ``s`` seconds (backoff forgotten; used for polling
  something that has no watch). ``Result(requeue=True)``: come back after the rate limiter's
  backoff. Raising an exception: logged, counted in ``controller_runtime_reconcile_errors_total``,
  retried with per-key exponential backoff. `TerminalError` is logged and counted but *not*
  retried (a spec that can never work; the next change to the object enqueues it again).
* `watch_primary(informer)` enqueues the object's own key; `watch_owned(informer, api_version,
  kind)` maps a child to its *controller* owner (the ownerReference with ``controller: true``
  whose group and kind match; the version is ignored, as in controller-runtime); children
  without one are ignored. `watch_mapped` takes any mapping function.
* Keys are queued with a priority (`priorities.py`): what a user did to a primary object is
  NORMAL, status refreshes (children and pods changing, our own status echo, resyncs, the
  initial LIST and the replay on start) are LOW, so an edit or a new object never waits behind
  a backlog of refreshes.
* `run()` starts the informers it was given (unless told not to), waits until they have synced
  (reconciling from a half-filled cache would prune objects that merely were not listed yet),
  then runs the workers. `stop()` (or cancelling `run()`) stops taking new keys, lets the workers
  finish what they hold (up to `drain_timeout`), then stops the informers it started. `run()`
  may be called again afterwards (with a fresh queue), e.g. when leadership is re-acquired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from fusioninfer.kube.owners import controller_owner
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.logs import log_context
from fusioninfer.runtime.metrics import (
    RESULT_ERROR,
    RESULT_REQUEUE,
    RESULT_REQUEUE_AFTER,
    RESULT_SUCCESS,
    RuntimeMetrics,
    default_metrics,
)
from fusioninfer.runtime.priorities import (
    EVENT_KINDS,
    EventKind,
    EventPriority,
    dependent_event_priority,
    primary_event_priority,
)
from fusioninfer.runtime.ratelimit import RateLimiter
from fusioninfer.runtime.workqueue import LOW, ShutDownError, WorkQueue

log = logging.getLogger(__name__)


class ObjectKey(NamedTuple):
    """Identifies one object: ``namespace`` is "" for cluster-scoped objects."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        meta = obj.get("metadata") or {}
        return cls(meta.get("namespace") or "", meta.get("name") or "")


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next. Both unset = done until something changes."""

    requeue: bool = False
    requeue_after: float | None = None


class TerminalError(Exception):
    """A reconcile error that retrying cannot fix (e.g. an invalid spec): not requeued."""


Reconcile = Callable[[ObjectKey], Awaitable[Result | None]]
Mapper = Callable[[Obj], Iterable[ObjectKey]]
Predicate = Callable[[Obj], bool]
# (the object before, the object now) -> whether an update is news to the reconciler
UpdateFilter = Callable[[Obj, Obj], bool]
# (the object now, the enqueue the event would do) -> True: drop the event (the reconciler's
# own write coming back), or hold it back and call the enqueue later if it turns out to be news
EchoFilter = Callable[[Obj, Callable[[], None]], bool]


class Controller:
    """Owns a `WorkQueue[ObjectKey]` and `workers` concurrent reconcile loops.

    Create it, wire informers with `watch_primary`/`watch_owned`/`watch_mapped`, then
    ``await controller.run()`` (until cancelled or `stop()`).
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        workers: int = 1,
        rate_limiter: RateLimiter[ObjectKey] | None = None,
        metrics: RuntimeMetrics | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.drain_timeout = drain_timeout
        m = metrics if metrics is not None else default_metrics()
        self._metrics = m
        self._rate_limiter = rate_limiter
        self.queue: WorkQueue[ObjectKey] = WorkQueue(name, rate_limiter=rate_limiter, metrics=m)
        self._m_total = m.reconcile_total
        self._m_errors = m.reconcile_errors_total.labels(controller=name)
        self._m_time = m.reconcile_time_seconds.labels(controller=name)
        self._m_active = m.active_workers.labels(controller=name)
        m.max_concurrent_reconciles.labels(controller=name).set(workers)
        self._m_active.set(0)
        for result in (RESULT_SUCCESS, RESULT_ERROR, RESULT_REQUEUE, RESULT_REQUEUE_AFTER):
            self._m_total.labels(controller=name, result=result)  # export zeros from the start
        self._informers: list[Informer] = []
        self._replays: list[tuple[Informer, Callable[[Obj], None]]] = []
        self._started_informers: list[Informer] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._running = False

    # -- wiring -------------------------------------------------------------------------------------

    def _track(self, informer: Informer) -> None:
        if informer not in self._informers:
            self._informers.append(informer)

    def watch_mapped(
        self,
        informer: Informer,
        mapper: Mapper,
        predicate: Predicate | None = None,
        *,
        priority: EventPriority = dependent_event_priority,
        changed: UpdateFilter | None = None,
        echo: EchoFilter | None = None,
    ) -> None:
        """Enqueue ``mapper(obj)`` keys for every add/update/delete of `informer`'s objects, at
        ``priority(event, old, new)``; LOW while the informer fills its cache (the initial LIST).

        On update both the old and the new object are mapped (an object that moved from owner A
        to owner B must wake both). An update for which ``changed(old, new)`` is false is
        dropped (controller-runtime's update predicate): it changed nothing the reconciler reads.
        An add or update that ``echo`` recognises as the reconciler's own write coming back is
        dropped too (the reconcile that wrote it has seen it already), or held back by it while
        such a write is in flight, to be enqueued later if it was news (`controller.echoes`).
        """
        self._track(informer)
        triggers = {
            e: self._metrics.controller_triggers_total.labels(controller=self.name, resource=informer.name, event=e)
            for e in EVENT_KINDS
        }

        def keys_of(*objs: Obj) -> set[ObjectKey]:
            return {key for obj in objs if predicate is None or predicate(obj) for key in mapper(obj)}

        def enqueue_at(event: EventKind, old: Obj | None, new: Obj) -> None:
            if event == "update" and old is not None and changed is not None and not changed(old, new):
                return
            if event != "delete" and echo is not None and echo(new, lambda: enqueue(event, old, new)):
                return
            enqueue(event, old, new)

        def enqueue(event: EventKind, old: Obj | None, new: Obj) -> None:
            keys = keys_of(old, new) if old is not None else keys_of(new)
            if not keys:
                return
            level = priority(event, old, new) if informer.has_synced() else LOW
            for key in keys:
                if self.queue.add(key, level):
                    triggers[event].inc()

        def replay(obj: Obj) -> None:
            for key in keys_of(obj):
                self.queue.add(key, LOW)

        self._replays.append((informer, replay))
        informer.add_event_handler(
            on_add=lambda obj: enqueue_at("add", None, obj),
            on_update=lambda old, new: enqueue_at("update", old, new),
            on_delete=lambda obj: enqueue_at("delete", None, obj),
        )

    def watch_primary(
        self, informer: Informer, predicate: Predicate | None = None, *, echo: EchoFilter | None = None
    ) -> None:
        """Reconcile an object whenever it changes (the controller's own kind); a change to its
        status alone, a resync and the initial LIST at LOW priority (`primary_event_priority`)."""
        self.watch_mapped(
            informer, lambda obj: (ObjectKey.of(obj),), predicate, priority=primary_event_priority, echo=echo
        )

    def watch_owned(
        self,
        informer: Informer,
        owner_api_version: str,
        owner_kind: str,
        predicate: Predicate | None = None,
        *,
        owner_namespaced: bool = True,
        echo: EchoFilter | None = None,
    ) -> None:
        """Reconcile the controller owner whenever one of its children changes.

        The owner key is (child's namespace, owner name), or ("", owner name) when the owner
        kind is cluster-scoped (`owner_namespaced=False`).
        """

        def mapper(obj: Obj) -> Iterable[ObjectKey]:
            owner = controller_owner(obj, owner_api_version, owner_kind)
            if owner is None:
                return ()
            ns = ((obj.get("metadata") or {}).get("namespace") or "") if owner_namespaced else ""
            return (ObjectKey(ns, owner),)

        self.watch_mapped(informer, mapper, predicate, echo=echo)

    # -- running ------------------------------------------------------------------------------------

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers)

    def ready(self) -> bool:
        """All watched informers synced and the workers running (for `/readyz`)."""
        return self._running and all(i.has_synced() for i in self._informers)

    async def run(self, *, start_informers: bool = True) -> None:
        """Start informers, wait for their sync, run the workers until `stop()` or cancellation."""
        if self._running or self._worker_tasks:
            raise RuntimeError(f"controller {self.name} is already running")
        if self.queue.shutting_down:
            # Run again after a stop (e.g. leadership lost and re-acquired): a fresh queue; the
            # event handlers look the queue up through `self`, so they feed the new one.
            self.queue = WorkQueue(self.name, rate_limiter=self._rate_limiter, metrics=self._metrics)
        self._stopped.clear()
        try:
            if start_informers:
                for inf in self._informers:
                    if not inf.running:
                        inf.start()
                        self._started_informers.append(inf)
            for inf in self._informers:
                await inf.wait_synced()
            # Every cached object once through its mapper: a (re)started controller looks at
            # everything, as a new process would after its initial LIST. Needed when run() is
            # called again (changes made while stopped) or with informers synced before this.
            # Cheap: the queue de-duplicates.
            for inf, enqueue in self._replays:
                for obj in inf.list():
                    enqueue(obj)
            self._running = True
            log.info("controller %s: caches synced, starting %d workers", self.name, self.workers)
            self._worker_tasks = [
                asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self.workers)
            ]
            await self._stopped.wait()
        finally:
            await self._shutdown()

    async def stop(self) -> None:
        """Ask `run()` to finish in-flight reconciles and return."""
        self._stopped.set()

    async def _shutdown(self) -> None:
        self._running = False
        self.queue.shutdown(discard_pending=True)
        if self._worker_tasks:
            _, pending = await asyncio.wait(self._worker_tasks, timeout=self.drain_timeout)
            for t in pending:
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._worker_tasks = []
        for inf in self._started_informers:
            await inf.stop()
        self._started_informers = []
        log.info("controller %s stopped", self.name)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDownError:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: ObjectKey) -> str:
        """Reconcile one key and apply the outcome to the queue. Returns the result label.

        Exposed so tests (and tools) can drive a single reconcile deterministically.
        """
        reconcile_id = str(uuid.uuid4())
        self._m_active.inc()
        start = time.perf_counter()
        outcome = RESULT_SUCCESS
        with log_context(controller=self.name, namespace=key.namespace, name=key.name, reconcileID=reconcile_id):
            try:
                result = await self.reconcile(key)
            except asyncio.CancelledError:
                outcome = ""  # interrupted (shutdown): neither a success nor an error
                raise
            except TerminalError as exc:
                outcome = RESULT_ERROR
                self._m_errors.inc()
                self.queue.forget(key)
                log.error("reconcile failed (terminal, not retried): %s", exc)
            except Exception as exc:
                outcome = RESULT_ERROR
                self._m_errors.inc()
                self.queue.add_rate_limited(key)
                log.error("reconcile failed, retry %d: %s", self.queue.num_requeues(key), exc, exc_info=exc)
            else:
                if result is not None and result.requeue_after is not None and result.requeue_after > 0:
                    outcome = RESULT_REQUEUE_AFTER
                    self.queue.forget(key)
                    self.queue.add_after(key, result.requeue_after)
                elif result is not None and result.requeue:
                    outcome = RESULT_REQUEUE
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
            finally:
                self._m_time.observe(time.perf_counter() - start)
                self._m_active.dec()
                if outcome:
                    self._m_total.labels(controller=self.name, result=outcome).inc()
        return outcome
