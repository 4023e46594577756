"""The operator's own writes coming back through its watches, told apart from news.

Every apply of a child and every status write returns the object as the apiserver stored it,
with the resourceVersion it was given; a watch delivers that very version too, sometimes before
the write's response has been read. The reconcile that wrote it uses the response (an applied
child goes into the status it computes), so a reconcile woken by the echo can find nothing new:
at N=1000 almost every service's second reconcile was such an echo
(`fusioninfer_controller_triggers_total`), and at idle one edit cost three reconciles.

`OwnWrites` is told when a write starts (`expect`) and what it returned (`record`). An informer
event for an object with a write in flight is held back (its enqueue is parked) until the write
returns: if it carries the version the write returned, it was the echo and is dropped; any other
held-back event is news and is enqueued then (`record`), as is everything held back for a write
that failed (`abandon`). An event arriving after the write returned is an echo only if it
carries exactly that version; the version is forgotten once its echo came.

It is not state the operator depends on: losing it (a restart) costs one reconcile per echo and
changes no decision. It is bounded: the oldest versions whose echo never came (a watch that
relisted past them) are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from fusioninfer.kube.types import Obj

__all__ = ["DEFAULT_SIZE", "OwnWrites", "Replay"]

# Writes whose echo is awaited at once: a burst of new services has a few in flight per worker.
DEFAULT_SIZE = 8192

Replay = Callable[[], None]  # what an informer event would have enqueued, for later
_Key = tuple[str, str, str, str]


def _key(obj: Obj) -> _Key:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("apiVersion") or ""),
        str(obj.get("kind") or ""),
        meta.get("namespace") or "",
        meta.get("name") or "",
    )


def _version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class OwnWrites:
    """Writes of this operator in flight, and the versions they returned until their echo."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("the size must be at least 1")
        self.size = size
        self._versions: OrderedDict[_Key, str] = OrderedDict()
        self._in_flight: dict[_Key, list[tuple[str, Replay]]] = {}

    def __len__(self) -> int:
        return len(self._versions) + len(self._in_flight)

    def expect(self, manifest: Obj) -> None:
        """A write of `manifest`'s object is about to be sent."""
        self._in_flight.setdefault(_key(manifest), [])

    def record(self, manifest: Obj, written: Obj) -> None:
        """The write of `manifest` returned `written`: the object as stored, with its version."""
        key, version = _key(written), _version(written)
        echoed = False
        for seen, replay in self._in_flight.pop(_key(manifest), []):
            if seen == version and version and not echoed:
                echoed = True
            else:
                replay()  # somebody else's change, held back while we wrote
        if echoed or not version:
            return
        self._versions[key] = version
        self._versions.move_to_end(key)
        while len(self._versions) > self.size:
            self._versions.popitem(last=False)

    def abandon(self, manifest: Obj) -> None:
        """The write of `manifest`'s object failed: whatever was held back for it is news."""
        for _, replay in self._in_flight.pop(_key(manifest), []):
            replay()

    def is_echo(self, seen: Obj, replay: Replay) -> bool:
        """Whether the event carrying `seen` is to be dropped now: our echo, or (with a write of
        the object in flight) held back, `replay` then called by `record` unless it was the echo."""
        key, version = _key(seen), _version(seen)
        held = self._in_flight.get(key)
        if held is not None:
            held.append((version, replay))
            return True
        if not version or self._versions.get(key) != version:
            return False  # news
        del self._versions[key]
        return True
