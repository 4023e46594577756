"""`metav1.Condition` lists: finding one by type, and keeping `lastTransitionTime` steady.

A controller recomputes its conditions from scratch on every pass; what must not change between
two passes over a settled object is the time each condition last flipped. If it moved on every
pass, every pass would write the status again (and wake every watcher of the object), and
`kubectl wait` or a human could no longer tell since when a condition has held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from fusioninfer.kube.types import Obj

C = TypeVar("C", bound=Mapping[str, Any])


def now_rfc3339() -> str:
    """Kubernetes' `Time` format, seconds precision (what the apiserver stores for conditions)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: Iterable[C] | None, type_: str) -> C | None:
    """The condition of type `type_` in `conditions` (None or a list), or None."""
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def status_condition(obj: Mapping[str, Any] | None, type_: str) -> Obj | None:
    """The condition of type `type_` in an object's `status.conditions`, or None."""
    return find_condition(((obj or {}).get("status") or {}).get("conditions"), type_)


def keep_transition_times(previous: Iterable[Mapping[str, Any]] | None, new: Iterable[Obj], stamp: str) -> list[Obj]:
    """`new`, each condition with `lastTransitionTime` set: the previous one's while its status
    is unchanged, else `stamp`. So recomputing a settled object yields exactly what is stored."""
    before = {c.get("type"): c for c in previous or []}
    out: list[Obj] = []
    for cond in new:
        old = before.get(cond["type"]) or {}
        kept = old.get("lastTransitionTime") if old.get("status") == cond["status"] else None
        out.append({**cond, "lastTransitionTime": kept or stamp})
    return out
