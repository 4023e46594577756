"""Two services claiming one model name on one Gateway: the younger one is told, not shadowed.

Every service's HTTPRoute matches the `X-Gateway-Model-Name` values of the models it serves.
When two routes on the same Gateway match the same value, the Gateway API gives the request to
the oldest route, so the younger service would silently receive nothing for that model. Computed
from the routes the operator can see (its own children, cached), pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusioninfer.api.labels import LABEL_SERVICE
from fusioninfer.builders.httproute import MODEL_HEADER


def _parents(route: Mapping[str, Any]) -> set[tuple[str, str]]:
    namespace = str((route.get("metadata") or {}).get("namespace", ""))
    return {
        (str(ref.get("namespace") or namespace), str(ref.get("name")))
        for ref in (route.get("spec") or {}).get("parentRefs") or []
        if (ref.get("kind") or "Gateway") == "Gateway"
    }


def model_values(route: Mapping[str, Any]) -> set[str]:
    values: set[str] = set()
    for rule in (route.get("spec") or {}).get("rules") or []:
        for match in rule.get("matches") or []:
            for header in match.get("headers") or []:
                if (
                    str(header.get("name", "")).lower() == MODEL_HEADER.lower()
                    and header.get("type", "Exact") == "Exact"
                ):
                    values.add(str(header.get("value")))
    return values


def _age(route: Mapping[str, Any]) -> tuple[str, str]:
    meta = route.get("metadata") or {}
    return str(meta.get("creationTimestamp") or "9999"), str(meta.get("name", ""))


def conflicts(mine: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(model, other service, gateway) for every model an *older* route on a shared Gateway
    already claims; empty when this route is the oldest claimant of each of its models."""
    own_service = ((mine.get("metadata") or {}).get("labels") or {}).get(LABEL_SERVICE)
    found: list[tuple[str, str, str]] = []
    for other in others:
        labels = (other.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_SERVICE) == own_service or _age(other) >= _age(mine):
            continue
        shared = _parents(mine) & _parents(other)
        for model in sorted(model_values(mine) & model_values(other)):
            for namespace, gateway in sorted(shared):
                found.append((model, str(labels.get(LABEL_SERVICE, "?")), f"{namespace}/{gateway}"))
    return found
