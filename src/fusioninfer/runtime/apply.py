"""Server-side apply, delete and get for manifests given as plain dicts, through one registry of
kinds (`runtime.registry`), so a CRD kind needs no generated client class.

Whether a write is needed at all is `runtime.diff`'s question; the quantities an apply body
must carry as strings are `kube.quantity.stringify_quantities`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import Generic
from lightkube.types import CascadeType, PatchType

from fusioninfer.kube.quantity import stringify_quantities
from fusioninfer.runtime.diff import with_hash_annotation
from fusioninfer.runtime.registry import KindRegistry, default_registry, raw_resource

# `with_hash_annotation` is re-exported for bench/, which imports it from here.
__all__ = ["apply", "apply_status", "delete", "get", "with_hash_annotation"]


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


async def _patch_apply(
    client: AsyncClient,
    res: Any,
    manifest: Mapping[str, Any],
    body: dict[str, Any],
    field_manager: str,
    force: bool,
    dry_run: bool,
) -> dict[str, Any]:
    """The one server-side apply request: `body` to `res`, named as `manifest` names it."""
    name, namespace = _name_ns(manifest)
    out = await client.patch(
        res,
        name,
        body,
        namespace=namespace,
        patch_type=PatchType.APPLY,
        field_manager=field_manager,
        force=force,
        dry_run=dry_run,
    )
    return _plain(out)


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
    return await _patch_apply(client, res, manifest, stringify_quantities(manifest), field_manager, force, dry_run)


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
    return await _patch_apply(client, status_res, manifest, dict(manifest), field_manager, force, dry_run=False)


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
