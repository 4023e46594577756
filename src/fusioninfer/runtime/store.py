"""The informer's cache: objects by (namespace, name), indexed by namespace, owner UID and label.

Kept apart from the list-and-watch machinery so that what "the children of X" or "the pods with
label L=V in namespace N" costs is visible in one place: every index is a dict of key sets,
updated on every put and pop, so each such question is a dict lookup, never a scan of the
cache. An index bucket that empties is dropped, so a cache that saw many short-lived owners
does not keep a key per owner forever.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from fusioninfer.kube.owners import owner_uids
from fusioninfer.kube.types import Obj, ObjList
from fusioninfer.runtime.compact import compact

StoreKey = tuple[str, str]  # (namespace, name); namespace is "" for cluster-scoped objects


def store_key(obj: Mapping[str, Any]) -> StoreKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}


class IndexedStore:
    """Objects by `StoreKey`, with indexes by namespace, owner UID and label pair."""

    def __init__(self) -> None:
        self._objects: dict[StoreKey, Obj] = {}
        self._by_owner: dict[str, set[StoreKey]] = {}
        self._by_label: dict[tuple[str, str], set[StoreKey]] = {}
        self._by_namespace: dict[str, set[StoreKey]] = {}

    def get(self, key: StoreKey) -> Obj | None:
        return self._objects.get(key)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def __iter__(self) -> Iterator[StoreKey]:
        return iter(self._objects)

    def values(self) -> ObjList:
        """A snapshot of every object (safe to iterate while the store changes)."""
        return [*self._objects.values()]

    def list(self, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> ObjList:
        """Objects, optionally only in `namespace` and carrying every ``labels`` pair."""
        indexes: list[set[StoreKey]] = []
        if namespace is not None:
            indexes.append(self._by_namespace.get(namespace, set()))
        for pair in (labels or {}).items():
            indexes.append(self._by_label.get(pair, set()))
        if not indexes:
            return self.values()
        # Start from the smallest index: "the pods of one service in a namespace of 1000
        # services" costs the service's few pods, not a copy of the whole namespace.
        smallest, *others = sorted(indexes, key=len)
        return [self._objects[k] for k in smallest if all(k in other for other in others)]

    def by_owner(self, uid: str) -> ObjList:
        return [self._objects[k] for k in self._by_owner.get(uid, ())]

    def by_label(self, key: str, value: str) -> ObjList:
        return [self._objects[k] for k in self._by_label.get((key, value), ())]

    def _index(self, key: StoreKey, obj: Obj) -> None:
        self._by_namespace.setdefault(key[0], set()).add(key)
        for uid in owner_uids(obj):
            self._by_owner.setdefault(uid, set()).add(key)
        for pair in labels_of(obj).items():
            self._by_label.setdefault(pair, set()).add(key)

    def _unindex(self, key: StoreKey, obj: Obj) -> None:
        ns_keys = self._by_namespace.get(key[0])
        if ns_keys is not None:
            ns_keys.discard(key)
            if not ns_keys:
                del self._by_namespace[key[0]]
        for uid in owner_uids(obj):
            keys = self._by_owner.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[uid]
        for pair in labels_of(obj).items():
            keys = self._by_label.get(pair)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_label[pair]

    def put(self, obj: Obj) -> Obj | None:
        """Store `obj` under its key, compacted (`compact`: equal to `obj`, sharing strings and
        unchanged parts with the objects already held); returns the object it replaced, if any."""
        key = store_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = compact(obj, old)
        self._index(key, obj)
        return old

    def pop(self, key: StoreKey) -> Obj | None:
        """Remove the object under `key`; returns it, if there was one."""
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old
