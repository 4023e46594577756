"""A memo of the pure half of a reconcile: parse, build, hash, and "does live already match?".

Most reconciles change nothing. A child's or a pod's status moved, or our own status write came
back through the watch; the spec is the one already applied. Parsing it again, building every
child, hashing each and walking it against the cached live copy was most of such a reconcile's
own CPU (a router service: about 2 ms of 2.5). This module remembers, per InferenceService, the
last answer of each of those pure functions together with everything that answer was computed
from, and gives it back only when all of that is unchanged:

* the parsed service (or the validation errors): keyed by uid, ``metadata.generation`` (the
  apiserver bumps it on every spec change), labels and annotations;
* the build result with the applied-hash annotations: additionally keyed by the `BuildOptions`
  (capabilities, images, the autoscaler-set replicas);
* "this child needs no write": keyed by the desired child's hash and the live child's uid and
  ``resourceVersion`` (any change to the live object, ours or anyone's, gives it a new one).

It is a cache of pure functions keyed by all of their inputs, not state: a restart starts it
empty and the operator decides exactly as before. It is bounded (least recently used services
go first) so that memory stays flat with the number of services. A service without a
generation (never the case for one read from an apiserver) is never memoized.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fusioninfer.api.errors import FieldError, InvalidSpec
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, BuildResult, build
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.diff import APPLIED_HASH_ANNOTATION, first_difference, with_hash_annotation
from fusioninfer.runtime.loop import ObjectKey
from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics

__all__ = ["DEFAULT_SIZE", "Desired", "DesiredCache"]

# Services remembered. A router service's entry is about 30 KB, a plain one's about 8 KB: the
# default costs at most ~10 MB and covers the services a burst of events touches at once.
DEFAULT_SIZE = 1024

_Fingerprint = tuple[Any, ...]


@dataclass(frozen=True)
class Desired:
    """What a valid service asks for: the parsed spec and its children, hash-annotated."""

    isvc: InferenceService
    result: BuildResult


@dataclass
class _Entry:
    fingerprint: _Fingerprint
    isvc: InferenceService | None
    errors: list[FieldError] | None  # a fresh InvalidSpec is raised from them on each call
    options: BuildOptions | None = None
    result: BuildResult | None = None
    # (kind, name) -> (live uid, live resourceVersion, desired hash) last found to need no write.
    matched: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)


def _fingerprint(raw: Obj) -> _Fingerprint | None:
    meta = raw.get("metadata") or {}
    generation = meta.get("generation")
    if not isinstance(generation, int):
        return None
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    annotations = tuple(sorted((meta.get("annotations") or {}).items()))
    return (meta.get("uid"), generation, labels, annotations)


def _hash_of(manifest: Mapping[str, Any]) -> str:
    return str(((manifest.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION, ""))


def _live_version(live: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = live.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    return (str(uid), str(version)) if uid and version else None


def _build_hashed(isvc: InferenceService, options: BuildOptions) -> BuildResult:
    result = build(isvc, options)
    return replace(result, objects=[with_hash_annotation(m) for m in result.objects])


class DesiredCache:
    """Per-service memo of parse + build + hash + match; see the module docstring for why."""

    def __init__(self, size: int = DEFAULT_SIZE, *, metrics: RuntimeMetrics | None = None) -> None:
        if size < 0:
            raise ValueError("the cache size cannot be negative")
        self.size = size
        self._entries: OrderedDict[ObjectKey, _Entry] = OrderedDict()
        lookups = (metrics or default_metrics()).memo_lookups_total
        self._m_hit, self._m_changed, self._m_miss = (lookups.labels(result=r) for r in ("hit", "changed", "miss"))

    def __len__(self) -> int:
        return len(self._entries)

    def desired(self, raw: Obj, options_for: Callable[[InferenceService], BuildOptions]) -> Desired:
        """The parsed service and its hash-annotated children; raises `InvalidSpec` as `parse`.

        `options_for` is called with the parsed service on every call (it reads the caches, e.g.
        for the autoscaler-set replicas); the children are rebuilt only when its answer changed.
        The returned objects are shared with the memo: callers must not mutate them.
        """
        entry = self._entry(raw)
        if entry.errors is not None:
            raise InvalidSpec(entry.errors)
        assert entry.isvc is not None
        options = options_for(entry.isvc)
        if entry.result is None or entry.options != options:
            entry.result, entry.options = _build_hashed(entry.isvc, options), options
            entry.matched.clear()
        return Desired(entry.isvc, entry.result)

    def difference(self, raw: Obj, desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
        """`first_difference(desired, live)`, skipped when this very live version matched before."""
        if live is None:
            return first_difference(desired, live)
        entry = self._entries.get(_service_key(raw))
        seen = _live_version(live)
        if entry is None or seen is None:
            return first_difference(desired, live)
        child = (str(desired["kind"]), str(desired["metadata"]["name"]))
        stamp = (*seen, _hash_of(desired))
        if entry.matched.get(child) == stamp:
            return None
        found = first_difference(desired, live)
        if found is None:
            entry.matched[child] = stamp
        return found

    def forget(self, namespace: str, name: str) -> None:
        self._entries.pop(ObjectKey(namespace, name), None)

    def _entry(self, raw: Obj) -> _Entry:
        key = _service_key(raw)
        fingerprint = _fingerprint(raw)
        entry = self._entries.get(key)
        if entry is not None and fingerprint is not None and entry.fingerprint == fingerprint:
            self._m_hit.inc()
            self._entries.move_to_end(key)
            return entry
        (self._m_miss if entry is None else self._m_changed).inc()
        try:
            entry = _Entry(fingerprint or (), parse(raw), None)
        except InvalidSpec as exc:
            entry = _Entry(fingerprint or (), None, exc.errors)
        if fingerprint is None or self.size == 0:
            self._entries.pop(key, None)
            return entry  # used for this call only
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry


def _service_key(raw: Obj) -> ObjectKey:
    """The work queue's key for the service: one memo entry per key the reconciler is given."""
    return ObjectKey.of(raw)
