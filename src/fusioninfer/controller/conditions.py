"""Condition bookkeeping with metav1.Condition semantics.

Conditions are recomputed from scratch on every reconcile (nothing "sticks" after recovery);
this module only carries `lastTransitionTime` over from the previous status when a
condition's status did not flip, which is what `kubectl wait` and humans rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

# Condition types, in the order they are shown.
VALID = "Valid"
PREREQUISITES_MET = "PrerequisitesMet"
READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
ROUTE_READY = "RouteReady"
GANG_SCHEDULED = "GangScheduled"
ORDER = (VALID, PREREQUISITES_MET, READY, PROGRESSING, DEGRADED, ROUTE_READY, GANG_SCHEDULED)


@dataclass(frozen=True)
class Cond:
    """A condition as computed by this reconcile, before times are attached."""

    type: str
    status: Status
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    previous: Iterable[dict[str, Any]] | None,
    computed: Iterable[Cond],
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """The new `status.conditions`: `computed`, with transition times kept where status is unchanged."""
    before = {c.get("type"): c for c in previous or []}
    stamp = now or now_rfc3339()
    out = []
    for cond in computed:
        old = before.get(cond.type)
        transition = old.get("lastTransitionTime") if old and old.get("status") == cond.status else None
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message[:32768],
            "lastTransitionTime": transition or stamp,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    rank = {t: i for i, t in enumerate(ORDER)}
    out.sort(key=lambda c: (rank.get(c["type"], len(ORDER)), c["type"]))
    return out


def find(conditions: Iterable[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)
