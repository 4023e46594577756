"""Condition bookkeeping with metav1.Condition semantics.

Conditions are recomputed from scratch on every reconcile (nothing "sticks" after recovery);
`lastTransitionTime` is carried over from the previous status when a condition's status did
not flip (`kube.conditions`), which is what `kubectl wait` and humans rely on. This module adds
the InferenceService's own condition types and the order they are shown in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fusioninfer.kube.conditions import find_condition, keep_transition_times, now_rfc3339

__all__ = [
    "DEGRADED",
    "GANG_SCHEDULED",
    "ORDER",
    "PREREQUISITES_MET",
    "PROGRESSING",
    "READY",
    "ROUTE_READY",
    "VALID",
    "Cond",
    "Status",
    "find",
    "merge",
    "now_rfc3339",
]

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


def merge(
    previous: Iterable[dict[str, Any]] | None,
    computed: Iterable[Cond],
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """The new `status.conditions`: `computed`, with transition times kept where status is unchanged."""
    entries = [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message[:32768]} for c in computed]
    out = keep_transition_times(previous, entries, now or now_rfc3339())
    if generation is not None:
        for entry in out:
            entry["observedGeneration"] = generation
    rank = {t: i for i, t in enumerate(ORDER)}
    out.sort(key=lambda c: (rank.get(c["type"], len(ORDER)), c["type"]))
    return out


# The name the controller's modules use (`C.find`) for `kube.conditions.find_condition`.
find = find_condition
