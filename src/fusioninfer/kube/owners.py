"""Owner references: building one, and the two different questions asked of them.

"Is `obj` owned by `uid`?" means two things in Kubernetes, and mixing them up is a real bug:

* `is_controlled_by`: `uid` is the *controller* owner (the one reference with
  ``controller: true``). Only the controller may adopt, update or prune the object; the
  reconciler asks this before it touches a child, so it never prunes an object another
  controller (or a user's own ownerReference) claimed.
* `lists_owner`: `uid` is among the owners at all. The garbage collector deletes an object when
  any owner goes, so this is what "will it be collected with `uid`" asks; the informer's owner
  index (`owner_uids`) is built on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusioninfer.kube.types import Obj


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> Obj:
    """A controller ownerReference to the object `uid`, blocking its foreground deletion until
    this one is gone (what `kubectl delete --cascade=foreground` of the owner waits for)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_references(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The well-formed entries of `obj`'s `metadata.ownerReferences` (none if absent)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref for ref in refs if isinstance(ref, Mapping)]


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    """The UIDs of every owner of `obj`, controller or not."""
    return [str(ref["uid"]) for ref in owner_references(obj) if ref.get("uid")]


def lists_owner(obj: Mapping[str, Any], uid: str) -> bool:
    """`uid` is one of `obj`'s owners (controller or not): the garbage collector's question."""
    return any(ref.get("uid") == uid for ref in owner_references(obj))


def is_controlled_by(obj: Mapping[str, Any], uid: str) -> bool:
    """`uid` is `obj`'s controller owner: the question to ask before updating or pruning it."""
    return any(ref.get("uid") == uid and ref.get("controller") for ref in owner_references(obj))


def api_group(api_version: str) -> str:
    """``"apps/v1"`` -> ``"apps"``; ``"v1"`` (the core group) -> ``""``."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def controller_owner(obj: Mapping[str, Any], owner_api_version: str, owner_kind: str) -> str | None:
    """The name of `obj`'s controller owner if it is of `owner_kind` in `owner_api_version`'s group
    (any version: an owner written as v1 and read as v1alpha1 is the same object), else None."""
    group = api_group(owner_api_version)
    for ref in owner_references(obj):
        if not ref.get("controller"):
            continue
        if ref.get("kind") == owner_kind and api_group(str(ref.get("apiVersion", ""))) == group:
            name = ref.get("name")
            return str(name) if name else None
    return None
