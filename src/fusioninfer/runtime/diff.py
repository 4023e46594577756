"""Does a child need a write? The "desired is contained in live" test, and the hash annotation.

`needs_apply(desired, live)` is the heart of "unchanged spec + unchanged children = zero write
requests": the reconciler compares each desired child with the informer's cached copy and skips
the apply when the live object already *contains* everything desired. Live objects carry apiserver
defaults (``protocol: TCP``, ``revisionHistoryLimit: 10``, ...) and other managers' fields, so the
comparison is "desired is a subset of live", with these rules:

* maps: every desired key must be in live with a matching value; extra live keys are fine;
* a desired zero value (``None``, ``""``, ``0``, ``False``, ``{}``, ``[]``) matches a missing live
  key: Go's ``omitempty`` drops such values, so the apiserver never shows them back;
* lists of maps whose elements all have a unique ``name`` are list-maps: matched by name (the
  apiserver keeps other managers' elements, so extra live elements are fine);
* other lists are compared element-wise by position and must have the same length (they are
  atomic in SSA: an apply would replace them whole);
* resource quantities under ``limits``/``requests``/... are compared by value (``"1000m" == "1"``
  ``== 1``, ``"1Gi" == "1024Mi"``): the apiserver canonicalises them;
* ``apiVersion``, ``kind`` and ``status`` at the top, and server-owned metadata
  (``resourceVersion``, ``managedFields``, ``creationTimestamp``) are not compared.

A subset test cannot notice a field *removed* from the desired manifest (it is still in live, and
SSA would remove it only if applied). `with_hash_annotation` closes that gap: it stamps a hash of
the whole desired manifest into an annotation, which then differs from live whenever anything in
the desired manifest changed, including removals.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from fusioninfer.api.labels import ANNOTATION_APPLIED_HASH
from fusioninfer.kube.quantity import QUANTITY_KEYS, QUANTITY_MAPS, exact_value

__all__ = ["APPLIED_HASH_ANNOTATION", "first_difference", "manifest_hash", "needs_apply", "with_hash_annotation"]

# The runtime API's name for it (exported; the key itself lives in `api.labels`).
APPLIED_HASH_ANNOTATION = ANNOTATION_APPLIED_HASH

_MISSING = object()
_IGNORED_TOP = frozenset({"apiVersion", "kind", "status"})
_IGNORED_META = frozenset({"resourceVersion", "managedFields", "creationTimestamp", "generation", "uid"})


def _is_zero(value: object) -> bool:
    return (
        value is None
        or value == ""
        or value is False
        or value == {}
        or value == []
        or (type(value) in (int, float) and value == 0)
    )


def _scalar_equal(desired: object, live: object, quantity: bool) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return desired == live
    if quantity:
        d, lv = exact_value(desired), exact_value(live)
        return d is not None and lv is not None and d == lv
    return False


def _name_keyed(items: list[Any]) -> bool:
    if not items or not all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items):
        return False
    names = [i["name"] for i in items]
    return len(set(names)) == len(names)


def _diff(desired: object, live: object, path: str, quantity: bool) -> str | None:
    if desired is None:
        return None  # "not set by me"
    if live is _MISSING or live is None:
        return None if _is_zero(desired) else f"{path or '.'}: missing in live"
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return f"{path}: expected a map, live has {type(live).__name__}"
        for key, dval in desired.items():
            if path == "" and key in _IGNORED_TOP:
                continue
            if path == ".metadata" and key in _IGNORED_META:
                continue
            lval = live.get(key, _MISSING)
            if key in QUANTITY_MAPS:
                sub = _diff_quantity_map(dval, lval, f"{path}.{key}")
            else:
                sub = _diff(dval, lval, f"{path}.{key}", key in QUANTITY_KEYS)
            if sub is not None:
                return sub
        return None
    if isinstance(desired, list):
        if not isinstance(live, list):
            return f"{path}: expected a list, live has {type(live).__name__}"
        if _name_keyed(desired) and all(isinstance(i, Mapping) for i in live):
            by_name = {i.get("name"): i for i in live}
            for item in desired:
                sub = _diff(item, by_name.get(item["name"], _MISSING), f"{path}[name={item['name']}]", False)
                if sub is not None:
                    return sub
            return None
        if len(desired) != len(live):
            return f"{path}: length {len(desired)} != live {len(live)}"
        for i, (d, lv) in enumerate(zip(desired, live, strict=True)):
            sub = _diff(d, lv, f"{path}[{i}]", quantity)
            if sub is not None:
                return sub
        return None
    if _scalar_equal(desired, live, quantity):
        return None
    return f"{path}: {desired!r} != live {live!r}"


def _diff_quantity_map(desired: object, live: object, path: str) -> str | None:
    if not isinstance(desired, Mapping):
        return _diff(desired, live, path, True)
    if live is _MISSING or live is None:
        return None if _is_zero(desired) else f"{path}: missing in live"
    if not isinstance(live, Mapping):
        return f"{path}: expected a map, live has {type(live).__name__}"
    for key, dval in desired.items():
        sub = _diff(dval, live.get(key, _MISSING), f"{path}.{key}", True)
        if sub is not None:
            return sub
    return None


def first_difference(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """The first place where `live` does not satisfy `desired` (a path and why), or None.

    Meant for logs ("applying Deployment x: .spec.replicas: 3 != live 2").
    """
    if live is None:
        return "object does not exist"
    return _diff(desired, live, "", False)


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """True unless `live` (as cached, with apiserver defaults) already contains all of `desired`."""
    return first_difference(desired, live) is not None


def manifest_hash(manifest: Mapping[str, Any], *, annotation: str = APPLIED_HASH_ANNOTATION) -> str:
    """A stable hash of `manifest`, ignoring the hash annotation itself."""
    # Shallow copies of the path to the annotation only: json.dumps reads, never mutates, and a
    # deep copy of every child on every reconcile was a measurable share of the operator's CPU.
    body = dict(manifest)
    meta = body.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("annotations"), Mapping):
        annotations = {k: v for k, v in meta["annotations"].items() if k != annotation}
        meta = {k: v for k, v in meta.items() if k != "annotations"}
        if annotations:  # {} and absent mean the same
            meta["annotations"] = annotations
        body["metadata"] = meta
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def with_hash_annotation(manifest: Mapping[str, Any], *, annotation: str = APPLIED_HASH_ANNOTATION) -> dict[str, Any]:
    """`manifest` with ``metadata.annotations[annotation] = manifest_hash(...)``.

    Only the path to the annotation is copied (the top, `metadata`, `annotations`); everything
    else is shared with `manifest`, which is left as it was. Neither is mutated afterwards (the
    reconciler builds fresh manifests on every pass and only reads them), and a deep copy of
    every child on every reconcile was a quarter of a router service's reconcile.
    """
    out = dict(manifest)
    meta = dict(out.get("metadata") or {})
    stamp = manifest_hash(manifest, annotation=annotation)
    meta["annotations"] = {**(meta.get("annotations") or {}), annotation: stamp}
    out["metadata"] = meta
    return out
