"""Resolve ``(apiVersion, kind)`` to lightkube resource classes, and make "raw" twins of them.

Why raw twins: lightkube 1.x decodes built-in kinds into msgspec Structs. The runtime works on
plain JSON dicts instead (the cache, `needs_apply`, manifests from the builders are all dicts),
so converting Struct -> dict on every watch event would be wasted work, and a round trip through
the Struct could drop fields the model does not know. A raw twin is a lightkube *generic*
resource class (a ``dict`` subclass) carrying the built-in class's API info (group, version,
plural, verbs, scope): lightkube builds the same URLs for it but decodes responses as dicts.
Twins are not put in lightkube's global registry, so they never shadow the real classes.
"""

from __future__ import annotations

from typing import Any

from lightkube.core import resource as lk_res
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import (
    Generic,
    GenericGlobalResource,
    GenericNamespacedResource,
    create_global_resource,
    create_namespaced_resource,
)

ResourceType = type[Any]

_twins: dict[ResourceType, ResourceType] = {}


def is_namespaced(res: ResourceType) -> bool:
    return issubclass(res, lk_res.NamespacedResource)


def api_version_kind(res: ResourceType) -> tuple[str, str]:
    info = lk_res.api_info(res).resource
    return info.api_version, info.kind


def plural_of(res: ResourceType) -> str:
    return str(lk_res.api_info(res).plural)


def raw_resource(res: ResourceType) -> ResourceType:
    """A class lightkube treats like `res` but whose objects decode as plain dicts.

    Generic (CRD) classes already decode to dicts and are returned unchanged.
    """
    if issubclass(res, Generic):
        return res
    twin = _twins.get(res)
    if twin is None:
        base = GenericNamespacedResource if is_namespaced(res) else GenericGlobalResource
        twin = type(f"Raw{res.__name__}", (base,), {"_api_info": lk_res.api_info(res)})
        _twins[res] = twin
    return twin


def default_plural(kind: str) -> str:
    """Kubernetes' guess (meta.UnsafeGuessKindToResource), lowercase + s/es/ies, except that a
    vowel before the final y keeps the y (``Gateway`` -> ``gateways``, as every CRD spells it,
    where Kubernetes' guess would say ``gatewaies``)."""
    singular = kind.lower()
    if singular.endswith("s"):
        return singular + "es"
    if singular.endswith("y") and singular[-2:-1] not in ("a", "e", "i", "o", "u"):
        return singular[:-1] + "ies"
    return singular + "s"


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` -> ``("apps", "v1")``; ``"v1"`` -> ``("", "v1")``."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


class KindRegistry:
    """Maps ``(apiVersion, kind)`` to a lightkube resource class.

    Built-in kinds come from ``lightkube.resources.*`` (through lightkube's registry). Custom
    kinds are created on demand as generic resources: register them with their plural and scope
    (`register`), or let `resolve` guess (Kubernetes' plural rule; namespaced unless told).
    """

    def __init__(self) -> None:
        self._custom: dict[tuple[str, str], ResourceType] = {}

    def register(
        self, api_version: str, kind: str, *, plural: str | None = None, namespaced: bool = True
    ) -> ResourceType:
        group, version = split_api_version(api_version)
        plural = plural or default_plural(kind)
        if namespaced:
            cls: ResourceType = create_namespaced_resource(group, version, kind, plural)
        else:
            cls = create_global_resource(group, version, kind, plural)
        self._custom[(api_version, kind)] = cls
        return cls

    def resolve(self, api_version: str, kind: str, *, namespaced: bool | None = None) -> ResourceType:
        """The class for ``(api_version, kind)``; unknown kinds become generic resources.

        `namespaced` is only a hint used when a custom kind is seen for the first time (default:
        namespaced, the common case for CRDs).
        """
        cls = self._custom.get((api_version, kind))
        if cls is not None:
            return cls
        try:
            found: ResourceType = resource_registry.load(api_version, kind)
            return found
        except (LoadResourceError, ImportError, ValueError):
            pass
        return self.register(api_version, kind, namespaced=True if namespaced is None else namespaced)

    def for_manifest(self, manifest: dict[str, Any]) -> ResourceType:
        meta = manifest.get("metadata") or {}
        return self.resolve(
            manifest["apiVersion"], manifest["kind"], namespaced=True if meta.get("namespace") else None
        )


default_registry = KindRegistry()
