"""Which informer events a controller queues at NORMAL priority and which at LOW.

The rule, after controller-runtime's priority queue: what somebody did to the object the
controller owns (created it, changed its spec, started deleting it, relabelled it) is NORMAL;
everything that only refreshes what the controller reports is LOW: the echo of its own status
write, a periodic resync, the initial LIST after a start, a child or pod changing. A deleted
child is NORMAL, since it must be put back.

LOW keys are not starved: they wait only while NORMAL keys wait, and when nothing is being
created or edited (the steady state) they are taken as fast as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from fusioninfer.kube.types import Obj
from fusioninfer.runtime.workqueue import LOW, NORMAL

EventKind = Literal["add", "update", "delete"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
# (event, the object before (updates only), the object now) -> priority
EventPriority = Callable[[EventKind, Obj | None, Obj], int]


def _meta(obj: Obj | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def primary_event_priority(event: EventKind, old: Obj | None, new: Obj) -> int:
    """For the controller's own kind: NORMAL for a create, a delete, and an update that changed
    the spec (`metadata.generation`), labels or annotations, or set `deletionTimestamp`; LOW for
    the rest (status and managedFields changes, resyncs)."""
    if event != "update":
        return NORMAL
    before, after = _meta(old), _meta(new)
    for field in ("generation", "labels", "annotations", "deletionTimestamp"):
        if before.get(field) != after.get(field):
            return NORMAL
    return LOW


def dependent_event_priority(event: EventKind, old: Obj | None, new: Obj) -> int:
    """For children and other objects mapped to an owner: NORMAL when one is deleted (the owner
    may have to recreate it), LOW for adds and updates (they change only the owner's status, or
    echo the owner's own apply)."""
    return NORMAL if event == "delete" else LOW
