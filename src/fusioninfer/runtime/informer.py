"""A generic async informer (client-go's reflector + indexer + shared informer, for one type).

What it does, and why:

* **LIST, paginated** (``limit``/``continue``, `page_size` objects per request) so a big
  collection never needs one huge response; then **WATCH from the list's resourceVersion**
  with ``allowWatchBookmarks`` so that a quiet watch keeps advancing its resourceVersion and a
  reconnect rarely lands on an expired one.
* **410 Gone / "too old resource version"** (etcd compaction, apiserver restart with a fresh
  watch cache): relist and *diff* against the cache: objects that vanished get a synthetic
  ``on_delete`` (with their last known state), changed ones ``on_update``, new ones ``on_add``.
  Unchanged objects (same resourceVersion) produce no event.
* **Connection errors** (apiserver stopped, restarted, network blip): back off (jittered,
  exponential, capped by `backoff_max`) and resume the watch from the last resourceVersion seen;
  the informer never gives up, so the process survives an apiserver restart.
* **The store holds plain dicts** (the JSON the apiserver sent, ``metadata.managedFields``
  removed since they are big and useless to a controller, ``apiVersion``/``kind`` always filled
  in, also for LIST items which lack them). Objects in the store are shared: treat them as
  read-only (copy before modifying).
* **Indexes**: by owner UID (every ``metadata.ownerReferences[].uid``) and by label
  ``(key, value)``, maintained on every change, so "children of X" and "objects with label
  L=V" are dict lookups.
* **Handlers** ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)`` run in the
  informer's task, in event order. They may be sync or async; they should be quick (enqueue a
  key, not reconcile). A handler registered after the initial sync gets ``on_add`` for
  everything already cached. Exceptions in handlers are logged, never fatal.
* **Periodic resync** (off by default): every `resync_period` seconds every cached object is
  re-delivered as ``on_update(obj, obj)``. Every delivery is counted by kind (`metrics`).

Resources: any lightkube resource class, built-in (``core_v1.ConfigMap``, swapped for its
dict-decoding twin, see `registry.raw_resource`) or generic (``create_namespaced_resource``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.selector import build_selector
from lightkube.types import on_error_raise

from fusioninfer.kube.retry import exponential_delay, jittered
from fusioninfer.kube.types import Obj, ObjList
from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics
from fusioninfer.runtime.priorities import EVENT_KINDS
from fusioninfer.runtime.registry import ResourceType, api_version_kind, is_namespaced, raw_resource
from fusioninfer.runtime.store import IndexedStore, StoreKey, store_key

log = logging.getLogger(__name__)

AddHandler = Callable[[Obj], "Awaitable[None] | None"]
UpdateHandler = Callable[[Obj, Obj], "Awaitable[None] | None"]
DeleteHandler = Callable[[Obj], "Awaitable[None] | None"]
Transform = Callable[[Obj], Obj]


def resource_version(obj: Mapping[str, Any]) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv is not None else None


class _Handlers:
    __slots__ = ("on_add", "on_delete", "on_update")

    def __init__(
        self, on_add: AddHandler | None, on_update: UpdateHandler | None, on_delete: DeleteHandler | None
    ) -> None:
        self.on_add = on_add
        self.on_update = on_update
        self.on_delete = on_delete


class Informer:
    """Caches one resource type (optionally one namespace / label selector) and reports changes.

    Usage::

        inf = Informer(client, ConfigMap, namespace="ns", labels={"app": "x"})
        inf.add_event_handler(on_add=..., on_update=..., on_delete=...)
        inf.start()
        await inf.wait_synced()
        inf.get("ns", "name"); inf.list(namespace="ns"); inf.by_owner(uid)
        await inf.stop()

    `labels` uses lightkube's selector syntax: ``{"k": "v"}``, ``{"k": None}`` (exists),
    ``{"k": ["a", "b"]}`` (in), or `lightkube.operators` values.
    """

    def __init__(
        self,
        client: AsyncClient,
        resource: ResourceType,
        *,
        namespace: str | None = None,
        labels: Mapping[str, Any] | None = None,
        page_size: int = 500,
        resync_period: float | None = None,
        watch_timeout: int = 300,
        bookmarks: bool = True,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        transform: Transform | None = None,
        metrics: RuntimeMetrics | None = None,
        name: str | None = None,
    ) -> None:
        self._client = client
        self.resource = resource
        self._res = raw_resource(resource)
        self.namespaced = is_namespaced(resource)
        self.api_version, self.kind = api_version_kind(resource)
        self.namespace = namespace if self.namespaced else None
        self.labels = dict(labels) if labels else None
        self._selector = build_selector(self.labels) if self.labels else None
        self.page_size, self.resync_period, self.watch_timeout = page_size, resync_period, watch_timeout
        self.bookmarks, self.backoff_base, self.backoff_max = bookmarks, backoff_base, backoff_max
        self._transform = transform
        self.name = name or (f"{self.kind}" + (f"/{namespace}" if namespace else ""))
        m = metrics if metrics is not None else default_metrics()
        self._m_relists = m.informer_relists_total
        self._m_errors = m.informer_watch_errors_total.labels(resource=self.name)
        self._m_events = {str(e): m.informer_events_total.labels(resource=self.name, event=e) for e in EVENT_KINDS}

        self._store = IndexedStore()
        self._handlers: list[_Handlers] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._synced = asyncio.Event()
        self._rv: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.relists = 0  # full LISTs done (initial one included)
        self.last_error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start list+watch in a background task (idempotent). Returns the task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer:{self.name}")
        if self.resync_period and (self._resync_task is None or self._resync_task.done()):
            self._resync_task = asyncio.create_task(self._resync_loop(), name=f"resync:{self.name}")
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Cancel the background tasks and wait for them. The cache is kept (still readable)."""
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = self._resync_task = None

    async def __aenter__(self) -> Informer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def has_synced(self) -> bool:
        """True once the first LIST has been fully loaded into the cache."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait for the first full LIST. Bound it with ``asyncio.timeout(...)``."""
        await self._synced.wait()

    @property
    def resource_version(self) -> str | None:
        """The resourceVersion the cache is at (last list, event or bookmark)."""
        return self._rv

    # -- reading ------------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self._store.get((namespace or "", name))

    def __len__(self) -> int:
        return len(self._store)

    def list_keys(self) -> list[StoreKey]:
        return list(self._store)

    def list(self, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> ObjList:
        """Cached objects, optionally only in `namespace` and carrying every ``labels`` pair."""
        return self._store.list(namespace, labels)

    def by_owner(self, uid: str) -> ObjList:
        """Cached objects listing `uid` among their ownerReferences (controller or not)."""
        return self._store.by_owner(uid)

    def by_label(self, key: str, value: str) -> ObjList:
        return self._store.by_label(key, value)

    # -- handlers -----------------------------------------------------------------------------------

    def add_event_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        h = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(h)
        if self.has_synced() and on_add is not None:
            # Late joiner: replay the cache as adds (client-go does the same).
            for obj in self._store.values():
                try:
                    res = on_add(obj)
                    if inspect.isawaitable(res):
                        task = asyncio.ensure_future(res)
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
                except Exception:
                    log.exception("informer %s: on_add handler failed", self.name)

    async def _dispatch(self, kind: str, *args: Obj) -> None:
        self._m_events[kind[3:]].inc()
        for h in list(self._handlers):
            fn: Callable[..., Any] | None = getattr(h, kind)
            if fn is None:
                continue
            try:
                res = fn(*args)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("informer %s: %s handler failed", self.name, kind)

    # -- store --------------------------------------------------------------------------------------

    def _clean(self, raw: Any) -> Obj:
        obj: Obj = dict(raw)
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        if self._transform is not None:
            obj = self._transform(obj)
        return obj

    async def _upsert(self, obj: Obj) -> None:
        old = self._store.put(obj)
        if old is None:
            await self._dispatch("on_add", obj)
        else:
            await self._dispatch("on_update", old, obj)

    async def _delete(self, obj: Obj) -> None:
        old = self._store.pop(store_key(obj))
        # Deliver the final state from the event (newer than our copy), like client-go.
        await self._dispatch("on_delete", obj if obj.get("metadata") else (old or obj))

    async def _replace(self, items: ObjList) -> None:
        """Make the cache equal `items` (a fresh LIST), emitting only the differences."""
        fresh = {store_key(o): o for o in items}
        for key in [k for k in self._store if k not in fresh]:
            gone = self._store.pop(key)
            if gone is not None:
                await self._dispatch("on_delete", gone)
        for key, obj in fresh.items():
            old = self._store.get(key)
            if old is None:
                self._store.put(obj)
                await self._dispatch("on_add", obj)
            elif resource_version(old) != resource_version(obj):
                self._store.put(obj)
                await self._dispatch("on_update", old, obj)

    # -- list & watch -------------------------------------------------------------------------------

    @property
    def _ns_param(self) -> str | None:
        if not self.namespaced:
            return None
        return self.namespace if self.namespace else "*"

    async def _list(self, reason: str) -> None:
        self._m_relists.labels(resource=self.name, reason=reason).inc()
        listing = self._client.list(self._res, namespace=self._ns_param, chunk_size=self.page_size, labels=self.labels)
        items = [self._clean(o) async for o in listing]
        rv = listing.resourceVersion
        await self._replace(items)
        self._rv = rv
        self.relists += 1
        if not self._synced.is_set():
            log.debug("informer %s synced: %d objects at rv %s", self.name, len(items), rv)
            self._synced.set()

    def _watch_stream(self) -> AsyncIterator[tuple[str, Any]]:
        # lightkube's public `watch()` has no allowWatchBookmarks switch, so build the request with
        # its own request builder and run it through its own watch driver (which also follows our
        # resourceVersion across server-side timeouts).
        gc = self._client._client
        params: dict[str, Any] = {
            "resourceVersion": self._rv,
            "timeoutSeconds": int(jittered(self.watch_timeout, 1.0, 1.5)),
            "labelSelector": self._selector,
        }
        if self.bookmarks:
            params["allowWatchBookmarks"] = "true"
        br = gc.prepare_request("list", res=self._res, namespace=self._ns_param, watch=True, params=params)
        stream: AsyncIterator[tuple[str, Any]] = gc.watch(br, on_error=on_error_raise)
        return stream

    async def _watch(self) -> None:
        stream = self._watch_stream()
        try:
            async for etype, raw in stream:
                obj = self._clean(raw)
                rv = resource_version(obj)
                if etype in ("ADDED", "MODIFIED"):
                    await self._upsert(obj)
                elif etype == "DELETED":
                    await self._delete(obj)
                if rv:
                    self._rv = rv
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    def _backoff(self, attempt: int) -> float:
        # The exponent stops at 20 whatever the cap, and the jitter only shortens a wait.
        return jittered(exponential_delay(min(attempt, 20), base=self.backoff_base, cap=self.backoff_max), 0.5, 1.0)

    async def run(self) -> None:
        """List, then watch forever; relist on 410, back off on errors. Cancel to stop."""
        attempt = 0
        reason = "initial"
        while True:
            try:
                if self._rv is None:
                    await self._list(reason)
                    attempt = 0
                await self._watch()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                self.last_error = exc
                if exc.status.code == 410:
                    log.info("informer %s: resourceVersion %s expired, relisting", self.name, self._rv)
                    self._rv = None
                    reason = "expired"
                    continue
                self._m_errors.inc()
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "informer %s: API error %s (%s), retrying in %.2fs",
                    self.name, exc.status.code, exc.status.message, delay,
                )  # fmt: skip
                if exc.status.code in (401, 403, 404) and self._rv is not None:
                    # e.g. a CRD re-created, or RBAC changed: start over rather than resume.
                    self._rv = None
                    reason = "error"
                await asyncio.sleep(delay)
            except (httpx2.HTTPError, OSError, ValueError) as exc:
                # Connection refused/reset, stream cut mid-chunk (apiserver stopped), bad JSON.
                self.last_error = exc
                self._m_errors.inc()
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("informer %s: %s: %s, retrying in %.2fs", self.name, type(exc).__name__, exc, delay)
                if self._rv is None:
                    reason = "error"
                await asyncio.sleep(delay)
            except Exception as exc:
                # Anything else (a decoding bug, an unexpected library error) must not kill the
                # informer: wait_synced() callers would hang forever. Start over from a relist.
                self.last_error = exc
                self._m_errors.inc()
                delay = self._backoff(attempt)
                attempt += 1
                log.exception("informer %s: unexpected error, relisting in %.2fs", self.name, delay)
                self._rv = None
                reason = "error"
                await asyncio.sleep(delay)

    async def _resync_loop(self) -> None:
        assert self.resync_period
        while True:
            await asyncio.sleep(self.resync_period)
            if not self.has_synced():
                continue
            for obj in self._store.values():
                await self._dispatch("on_update", obj, obj)
