"""Prometheus metrics with controller-runtime's names, and a tiny asyncio HTTP server for
`/metrics`, `/healthz` and `/readyz`.

Why controller-runtime's names: dashboards and alerts written for Go operators
(`controller_runtime_reconcile_total`, `workqueue_depth`, ...) then work unchanged for ours.

Why a `RuntimeMetrics` bundle bound to a registry instead of module-level metric objects:
prometheus_client refuses to register the same metric name twice in one registry, so tests that
build many queues/controllers either share one registry (and see each other's samples) or build
their own bundle with `RuntimeMetrics(CollectorRegistry())`. Production code simply uses
`default_metrics()`, which is bound to the module-level `REGISTRY`; `use_registry()` swaps it.

Why not aiohttp: it is not a dependency. The probe endpoints need nothing but GET and a status
line, so a ~60-line `asyncio.start_server` handler is enough and keeps the install small.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

log = logging.getLogger(__name__)

# controller-runtime's reconcile_time_seconds buckets (pkg/internal/controller/metrics).
RECONCILE_TIME_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0,
    40.0, 50.0, 60.0,
)  # fmt: skip
# client-go's workqueue buckets: prometheus.ExponentialBuckets(10e-9, 10, 10).
WORKQUEUE_BUCKETS: tuple[float, ...] = tuple(1e-8 * 10**i for i in range(10))
# A young collection takes microseconds, a full one over big caches up to a few hundred ms.
GC_PAUSE_BUCKETS: tuple[float, ...] = (0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)

RESULT_SUCCESS = "success"
RESULT_ERROR = "error"
RESULT_REQUEUE = "requeue"
RESULT_REQUEUE_AFTER = "requeue_after"


class RuntimeMetrics:
    """Every metric the runtime exports, registered in one `CollectorRegistry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # -- controller ---------------------------------------------------------------------------
        self.reconcile_total = Counter(
            "controller_runtime_reconcile_total",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors_total = Counter(
            "controller_runtime_reconcile_errors_total",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time_seconds = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_TIME_BUCKETS,
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=r,
        )
        self.max_concurrent_reconciles = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=r,
        )
        # -- workqueue ----------------------------------------------------------------------------
        self.workqueue_depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=r)
        self.workqueue_adds_total = Counter(
            "workqueue_adds_total", "Total number of adds handled by workqueue", ["name"], registry=r
        )
        self.workqueue_queue_duration_seconds = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            ["name"],
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_work_duration_seconds = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name"],
            buckets=WORKQUEUE_BUCKETS,
            registry=r,
        )
        self.workqueue_retries_total = Counter(
            "workqueue_retries_total", "Total number of retries handled by workqueue", ["name"], registry=r
        )
        self.workqueue_unfinished_work_seconds = Gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by "
            "work_duration. Large values indicate stuck threads.",
            ["name"],
            registry=r,
        )
        self.workqueue_longest_running_processor_seconds = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            ["name"],
            registry=r,
        )
        # -- informers and client -----------------------------------------------------------------
        self.rest_client_requests_total = Counter(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
            ["code", "method", "host"],
            registry=r,
        )
        self.informer_relists_total = Counter(
            "fusioninfer_informer_relists_total",
            "Full LISTs done by an informer (initial sync, 410 Gone, watch errors).",
            ["resource", "reason"],
            registry=r,
        )
        self.informer_events_total = Counter(
            "fusioninfer_informer_events_total",
            "Changes an informer delivered to its handlers (watch events, relist differences, "
            "resyncs), by kind of change: what the apiserver streams to the operator.",
            ["resource", "event"],
            registry=r,
        )
        self.controller_triggers_total = Counter(
            "fusioninfer_controller_triggers_total",
            "Informer events that made a key pending (each such key is reconciled once more), "
            "by the informer and kind of change; events for keys already pending merge and are "
            "not counted.",
            ["controller", "resource", "event"],
            registry=r,
        )
        self.memo_lookups_total = Counter(
            "fusioninfer_reconcile_memo_lookups_total",
            "Reconciles by what the memo of parse/build/hash had for the service: hit (the same "
            "spec), changed (an older spec), miss (nothing: new, or evicted as least recently used).",
            ["result"],
            registry=r,
        )
        self.informer_watch_errors_total = Counter(
            "fusioninfer_informer_watch_errors_total",
            "Watch or list failures an informer recovered from by backing off.",
            ["resource"],
            registry=r,
        )
        self.gc_pause_seconds = Histogram(
            "fusioninfer_gc_pause_seconds",
            "Duration of CPython's garbage collections (nothing else runs meanwhile), by the oldest "
            "generation collected; a full collection (2) walks every cached object.",
            ["generation"],
            buckets=GC_PAUSE_BUCKETS,
            registry=r,
        )
        self.leader_election_master_status = Gauge(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
            "1 indicates master. 'name' is the string used to identify the lease.",
            ["name"],
            registry=r,
        )


REGISTRY = CollectorRegistry()
_default: RuntimeMetrics | None = None


def default_metrics() -> RuntimeMetrics:
    """The process-wide bundle (bound to `REGISTRY` unless `use_registry` replaced it)."""
    global _default
    if _default is None:
        _default = RuntimeMetrics(REGISTRY)
    return _default


def use_registry(registry: CollectorRegistry) -> RuntimeMetrics:
    """Rebind the default bundle to `registry` (tests; or to export through another registry)."""
    global REGISTRY, _default
    REGISTRY = registry
    _default = RuntimeMetrics(registry)
    return _default


# ---------------------------------------------------------------------------------------------------
# HTTP endpoints
# ---------------------------------------------------------------------------------------------------

Check = Callable[[], "bool | Awaitable[bool]"]


async def _run_check(check: Check | None) -> tuple[bool, str]:
    if check is None:
        return True, "ok"
    try:
        res: Any = check()
        if inspect.isawaitable(res):
            res = await res
    except Exception as exc:  # a broken check is "not ready", never a crashed server
        return False, f"check failed: {exc!r}"
    return (True, "ok") if res else (False, "not ready")


class MetricsServer:
    """Serves `/metrics` (Prometheus text format), `/healthz` and `/readyz` over plain HTTP/1.1.

    `ready_check` (sync or async, returns bool) decides `/readyz`: e.g. "all informers synced".
    `health_check` decides `/healthz` (default: always ok: the event loop answering *is* the
    liveness signal). Bind port 0 to get a free port (see `.port`). One connection = one request.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registry: CollectorRegistry | None = None,
        ready_check: Check | None = None,
        health_check: Check | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._registry = registry
        self.ready_check = ready_check
        self.health_check = health_check
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        log.info("serving /metrics /healthz /readyz on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _respond(self, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path == "/metrics":
            reg = self._registry if self._registry is not None else REGISTRY
            return 200, CONTENT_TYPE_LATEST, generate_latest(reg)
        if path in ("/healthz", "/livez"):
            ok, msg = await _run_check(self.health_check)
            return (200 if ok else 503), "text/plain; charset=utf-8", msg.encode()
        if path == "/readyz":
            ok, msg = await _run_check(self.ready_check)
            return (200 if ok else 503), "text/plain; charset=utf-8", msg.encode()
        return 404, "text/plain; charset=utf-8", b"not found"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request_line = await reader.readline()
                while True:  # drain headers; we need none of them
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
            parts = request_line.decode("latin-1").split()
            if len(parts) < 2:
                status, ctype, body = 400, "text/plain", b"bad request"
                method = "GET"
            else:
                method = parts[0].upper()
                if method not in ("GET", "HEAD"):
                    status, ctype, body = 405, "text/plain", b"method not allowed"
                else:
                    status, ctype, body = await self._respond(parts[1])
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            head = (
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
