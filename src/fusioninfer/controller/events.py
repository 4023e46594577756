"""Kubernetes Events about an InferenceService: what the operator did and what went wrong.

Events are emitted only when something happens (a child created, updated or pruned, a
condition flipped, an apply failed), never on a quiet reconcile, so an idle operator writes
nothing. A failure to record an Event is logged and otherwise ignored: Events are advisory.
"""

from __future__ import annotations

import logging
import uuid
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

    async def emit(self, involved: dict[str, Any], type_: EventType, reason: str, message: str) -> None:
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
            firstTimestamp=stamp,  # type: ignore[arg-type]
            lastTimestamp=stamp,  # type: ignore[arg-type]
            count=1,
            reportingComponent=self._component,
        )
        try:
            await self._client.create(event)
        except (ApiError, OSError) as exc:  # pragma: no cover - best effort by design
            log.warning("could not record event %s/%s: %s", reason, meta.get("name"), exc)
