"""The operator's own writes coming back through its watches, told apart from news.

Every apply of a child and every status write returns the object as the apiserver stored it,
with the resourceVersion it was given; moments later a watch delivers that very version. The
reconcile that wrote it has already used the response (an applied child goes into the status it
computes), so a reconcile woken by the echo can find nothing new. At idle, without this, one
edit of a service costs three reconciles instead of one: the edit, the echo of the workload's
apply, the echo of the status write (`fusioninfer_controller_triggers_total` showed them).

`OwnWrites` remembers the resourceVersion each write returned; an informer event carrying
exactly that version of that object is an echo and wakes no reconcile. Any other version is
news: somebody else's change, or a later one. A version is forgotten once its echo came.

It is not state the operator depends on: losing it (a restart) costs one reconcile per echo
and changes no decision; it is bounded, dropping the oldest versions whose echo never came (a
watch that relisted past them).
"""

from __future__ import annotations

from collections import OrderedDict

from fusioninfer.kube.types import Obj

__all__ = ["DEFAULT_SIZE", "OwnWrites"]

# Writes whose echo is awaited at once: a burst of new services has a few in flight per worker.
DEFAULT_SIZE = 8192

_Key = tuple[str, str, str, str]


def _identity(obj: Obj) -> tuple[_Key, str] | None:
    meta = obj.get("metadata") or {}
    version = meta.get("resourceVersion")
    if not version or not meta.get("name"):
        return None
    key = (str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""), meta.get("namespace") or "", meta["name"])
    return key, str(version)


class OwnWrites:
    """resourceVersions of the objects this operator wrote, until their watch echo arrives."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("the size must be at least 1")
        self.size = size
        self._versions: OrderedDict[_Key, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._versions)

    def record(self, written: Obj) -> None:
        """`written` is what a write returned: the object as stored, with its new version."""
        identity = _identity(written)
        if identity is None:
            return
        key, version = identity
        self._versions[key] = version
        self._versions.move_to_end(key)
        while len(self._versions) > self.size:
            self._versions.popitem(last=False)

    def is_echo(self, seen: Obj) -> bool:
        """Whether `seen` (from a watch) is exactly the version one of our writes returned."""
        identity = _identity(seen)
        if identity is None:
            return False
        key, version = identity
        if self._versions.get(key) != version:
            return False  # news; a pending echo of ours (an older event came first) stays awaited
        del self._versions[key]
        return True
