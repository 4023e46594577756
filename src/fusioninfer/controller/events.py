"""Kubernetes Events about an InferenceService: what the operator did and what went wrong.

Events are emitted only when something happens (a child created, updated or pruned, a
condition flipped, an apply failed), never on a quiet reconcile, so an idle operator writes
nothing. A failure to record an Event is logged and otherwise ignored: Events are advisory.

Normal Events ("Created Deployment x", "Ready=True") say what the status already shows, so
`HeldEvents` keeps them back while the operator is busy and sends them in the lull after a
burst: a thousand services applied at once then cost the apiserver their children and
statuses first, and their Events afterwards. A Warning is news and goes at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from lightkube import ApiError, AsyncClient
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from fusioninfer.controller.conditions import now_rfc3339

log = logging.getLogger(__name__)

COMPONENT = "fusioninfer-controller"
EventType = Literal["Normal", "Warning"]


class EventRecorder:
    def __init__(self, client: AsyncClient, component: str = COMPONENT) -> None:
        self._client = client
        self._component = component

    async def emit(
        self,
        involved: dict[str, Any],
        type_: EventType,
        reason: str,
        message: str,
        *,
        first: str | None = None,
        count: int = 1,
    ) -> None:
        """Create one Event; `first` (RFC 3339) and `count` describe one held back and repeated."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        stamp = now_rfc3339()
        event = Event(
            metadata=ObjectMeta(name=f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}", namespace=namespace),
            involvedObject=ObjectReference(
                apiVersion=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=meta.get("name"),
                namespace=namespace,
                uid=meta.get("uid"),
                resourceVersion=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=EventSource(component=self._component),
            firstTimestamp=first or stamp,  # type: ignore[arg-type]
            lastTimestamp=stamp,  # type: ignore[arg-type]
            count=count,
            reportingComponent=self._component,
        )
        try:
            await self._client.create(event)
        except (ApiError, OSError) as exc:  # pragma: no cover - best effort by design
            log.warning("could not record event %s/%s: %s", reason, meta.get("name"), exc)


async def _at_once() -> None:
    """The default lull: nothing to wait for (no work queue attached)."""


@dataclass
class _Held:
    involved: dict[str, Any]
    reason: str
    message: str
    first: str
    since: float
    count: int = 1


class HeldEvents:
    """Events sent in the background, `concurrency` at a time: Normal ones (`hold`) once the
    operator is idle, Warnings (`send_now`) at once.

    `lull` returns once the operator is idle (the operator passes its work queue's
    `wait_idle`); whatever waited longer than `max_delay` goes out anyway, so a cluster that is
    never quiet still gets its Events. The same Event held twice (same object, reason and
    message) is sent once with a count, as client-go's correlator does.
    """

    def __init__(
        self,
        recorder: EventRecorder,
        *,
        max_delay: float,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = recorder
        self.lull: Callable[[], Awaitable[None]] = _at_once
        self.max_delay = max_delay
        self._clock = clock
        self._held: dict[tuple[str, str, str], _Held] = {}
        self._sender: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._sending: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, involved: dict[str, Any], reason: str, message: str) -> None:
        meta = involved.get("metadata") or {}
        key = (str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"), reason, message)
        held = self._held.get(key)
        if held is not None:
            held.count += 1
            held.involved = involved
        else:
            self._held[key] = _Held(involved, reason, message, now_rfc3339(), self._clock())
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_when_idle())

    def send_now(self, involved: dict[str, Any], type_: EventType, reason: str, message: str) -> None:
        """Send one Event without waiting for a lull, and without making the caller wait."""
        task = asyncio.ensure_future(self._send(_Held(involved, reason, message, now_rfc3339(), 0.0), type_))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not record an event: %s", task.exception())

    async def _send_when_idle(self) -> None:
        while self._held:
            if not self._hurry.is_set():
                oldest = min(h.since for h in self._held.values())
                wait = max(self.max_delay - (self._clock() - oldest), 0.0)
                lull, hurry = asyncio.ensure_future(self.lull()), asyncio.ensure_future(self._hurry.wait())
                await asyncio.wait({lull, hurry}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                lull.cancel()
                hurry.cancel()
            batch, self._held = list(self._held.values()), {}
            await asyncio.gather(*(self._send(h) for h in batch), return_exceptions=True)

    async def _send(self, held: _Held, type_: EventType = "Normal") -> None:
        async with self._slots:
            await self.recorder.emit(
                held.involved, type_, held.reason, held.message, first=held.first, count=held.count
            )

    async def flush(self) -> None:
        """Send everything held now, without waiting for a lull (shutdown, tests)."""
        self._hurry.set()
        try:
            while self._sender is not None and not self._sender.done():
                await asyncio.shield(self._sender)
            while self._sending:
                await asyncio.gather(*list(self._sending), return_exceptions=True)
        finally:
            self._hurry.clear()
