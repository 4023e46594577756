"""Server-side apply for manifests given as plain dicts, the "does it need applying?" test, and a
request counter that proves an idle operator sends no writes.

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

import copy
import hashlib
import json
from collections import Counter, deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import Generic
from lightkube.types import CascadeType, PatchType

from fusioninfer.api.labels import ANNOTATION_APPLIED_HASH
from fusioninfer.kube.quantity import exact_value
from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics
from fusioninfer.runtime.registry import KindRegistry, default_registry, raw_resource

__all__ = [
    "APPLIED_HASH_ANNOTATION",
    "WRITE_METHODS",
    "KindRegistry",
    "RequestCounter",
    "apply",
    "apply_status",
    "default_registry",
    "delete",
    "first_difference",
    "get",
    "instrument_client",
    "manifest_hash",
    "needs_apply",
    "parse_quantity",
    "stringify_quantities",
    "with_hash_annotation",
]

# The runtime API's name for it (exported; the key itself lives in `api.labels`).
APPLIED_HASH_ANNOTATION = ANNOTATION_APPLIED_HASH

# ---------------------------------------------------------------------------------------------------
# Quantities
# ---------------------------------------------------------------------------------------------------

# Map keys whose values are maps of quantities (ResourceList and friends) ...
_QUANTITY_MAPS = frozenset({"limits", "requests", "capacity", "allocatable", "hard", "used", "overhead"})
# ... and keys whose value is a single quantity.
_QUANTITY_KEYS = frozenset({"sizeLimit"})


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes resource.Quantity as an exact Decimal, or None if `value` is not one."""
    return exact_value(value)


# ---------------------------------------------------------------------------------------------------
# needs_apply
# ---------------------------------------------------------------------------------------------------

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
        d, lv = parse_quantity(desired), parse_quantity(live)
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
            if key in _QUANTITY_MAPS:
                sub = _diff_quantity_map(dval, lval, f"{path}.{key}")
            else:
                sub = _diff(dval, lval, f"{path}.{key}", key in _QUANTITY_KEYS)
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
    """A deep copy of `manifest` with ``metadata.annotations[annotation] = manifest_hash(...)``."""
    out = copy.deepcopy(dict(manifest))
    meta = out.setdefault("metadata", {})
    meta.setdefault("annotations", {})
    meta["annotations"][annotation] = manifest_hash(manifest, annotation=annotation)
    return out


# ---------------------------------------------------------------------------------------------------
# Request counting
# ---------------------------------------------------------------------------------------------------

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestCounter:
    """Counts every HTTP request a lightkube client sends (see `instrument_client`).

    ``writes`` is POST+PUT+PATCH+DELETE: applies, creates, status updates, deletes. ``recent``
    keeps the last requests as ``(method, path?query)`` so a failing "zero writes" test can say which
    write happened.
    """

    def __init__(self, keep: int = 500) -> None:
        self.by_method: Counter[str] = Counter()
        self.recent: deque[tuple[str, str]] = deque(maxlen=keep)

    def record(self, method: str, path: str) -> None:
        method = method.upper()
        self.by_method[method] += 1
        self.recent.append((method, path))

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.by_method.items() if m in WRITE_METHODS)

    @property
    def reads(self) -> int:
        return sum(n for m, n in self.by_method.items() if m not in WRITE_METHODS)

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    def recent_writes(self) -> list[tuple[str, str]]:
        return [r for r in self.recent if r[0] in WRITE_METHODS]

    def reset(self) -> None:
        self.by_method.clear()
        self.recent.clear()


def _httpx_client(client: AsyncClient) -> httpx2.AsyncClient:
    # lightkube keeps its httpx client two levels down (AsyncClient -> GenericAsyncClient -> httpx).
    inner = getattr(getattr(client, "_client", None), "_client", None)
    if not isinstance(inner, httpx2.AsyncClient):
        raise TypeError("unsupported lightkube version: cannot reach the underlying httpx2 client")
    return inner


def instrument_client(
    client: AsyncClient,
    counter: RequestCounter | None = None,
    *,
    metrics: RuntimeMetrics | None = None,
) -> RequestCounter:
    """Hook `client` so every request is counted in `counter` (returned; new if None) and in the
    ``rest_client_requests_total{code,method,host}`` metric.

    Counting at the HTTP layer (httpx event hooks) catches every write, also ones the reconciler
    sends without going through this module (status updates, events).
    """
    counter = counter if counter is not None else RequestCounter()
    m = metrics if metrics is not None else default_metrics()
    hx = _httpx_client(client)

    async def on_request(request: httpx2.Request) -> None:
        counter.record(request.method, request.url.raw_path.decode("ascii", "replace"))

    async def on_response(response: httpx2.Response) -> None:
        req = response.request
        m.rest_client_requests_total.labels(code=str(response.status_code), method=req.method, host=req.url.host).inc()

    hooks = hx.event_hooks
    hooks["request"].append(on_request)
    hooks["response"].append(on_response)
    hx.event_hooks = hooks
    return counter


# ---------------------------------------------------------------------------------------------------
# Apply / delete / get
# ---------------------------------------------------------------------------------------------------


def _quantity_str(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return str(value) if isinstance(value, int) else format(Decimal(str(value)).normalize(), "f")


def stringify_quantities(obj: Any) -> Any:
    """A copy of `obj` with numbers in quantity positions (``limits``/``requests``/...,
    ``sizeLimit``) turned into strings.

    Why: the apiserver accepts ``cpu: 0.5`` in a create or update, but server-side apply builds a
    typed object first and rejects it ("expected string, got 0.5"). `needs_apply` already treats
    both forms as equal.
    """
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in _QUANTITY_MAPS and isinstance(value, Mapping):
                out[key] = {k: _quantity_str(v) for k, v in value.items()}
            elif key in _QUANTITY_KEYS:
                out[key] = _quantity_str(value)
            else:
                out[key] = stringify_quantities(value)
        return out
    if isinstance(obj, list):
        return [stringify_quantities(v) for v in obj]
    return obj


def _plain(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Generic):
        return dict(obj)
    if isinstance(obj, dict):
        return obj
    return dict(obj.to_dict())


def _name_ns(manifest: Mapping[str, Any]) -> tuple[str, str | None]:
    meta = manifest.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError(f"manifest {manifest.get('kind')} has no metadata.name")
    return str(name), meta.get("namespace")


async def apply(
    client: AsyncClient,
    manifest: Mapping[str, Any],
    field_manager: str,
    *,
    force: bool = True,
    dry_run: bool = False,
    registry: KindRegistry | None = None,
) -> dict[str, Any]:
    """Server-side apply `manifest` (a dict with apiVersion/kind/metadata) as `field_manager`.

    Returns the live object as a dict. `force=True` takes over fields other managers own (a
    controller is the source of truth for what it applies).
    """
    reg = registry if registry is not None else default_registry
    res = raw_resource(reg.for_manifest(dict(manifest)))
    name, namespace = _name_ns(manifest)
    out = await client.patch(
        res,
        name,
        stringify_quantities(manifest),
        namespace=namespace,
        patch_type=PatchType.APPLY,
        field_manager=field_manager,
        force=force,
        dry_run=dry_run,
    )
    return _plain(out)


async def apply_status(
    client: AsyncClient,
    manifest: Mapping[str, Any],
    field_manager: str,
    *,
    force: bool = True,
    registry: KindRegistry | None = None,
) -> dict[str, Any]:
    """Server-side apply to the ``/status`` subresource of a custom resource.

    `manifest` needs apiVersion, kind, metadata.name(/namespace) and ``status``.
    """
    reg = registry if registry is not None else default_registry
    res = reg.for_manifest(dict(manifest))
    status_res = getattr(res, "Status", None)
    if status_res is None or not issubclass(res, Generic):
        raise TypeError(f"apply_status supports custom (generic) resources only, not {res.__name__}")
    name, namespace = _name_ns(manifest)
    out = await client.patch(
        status_res,
        name,
        dict(manifest),
        namespace=namespace,
        patch_type=PatchType.APPLY,
        field_manager=field_manager,
        force=force,
    )
    return _plain(out)


async def delete(
    client: AsyncClient,
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None = None,
    *,
    propagation: CascadeType = CascadeType.BACKGROUND,
    registry: KindRegistry | None = None,
) -> bool:
    """Delete one object. Returns False if it was already gone (404 is not an error)."""
    reg = registry if registry is not None else default_registry
    res = raw_resource(reg.resolve(api_version, kind, namespaced=namespace is not None))
    try:
        await client.delete(res, name, namespace=namespace, cascade=propagation)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True


async def get(
    client: AsyncClient,
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None = None,
    *,
    registry: KindRegistry | None = None,
) -> dict[str, Any] | None:
    """GET one object as a dict (managedFields kept), or None if it does not exist."""
    reg = registry if registry is not None else default_registry
    res = raw_resource(reg.resolve(api_version, kind, namespaced=namespace is not None))
    try:
        out = await client.get(res, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return _plain(out)
