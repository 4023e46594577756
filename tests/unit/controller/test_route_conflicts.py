"""Model-name conflicts between services on one Gateway (controller/route_conflicts.py)."""

from __future__ import annotations

from typing import Any

from fusioninfer.controller.route_conflicts import conflicts, model_values


def route(service: str, created: str, *models: str, gateway: str = "gw", namespace: str = "ns") -> dict[str, Any]:
    matches = [{"headers": [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": m}]} for m in models]
    return {
        "metadata": {"name": f"{service}-route", "namespace": namespace, "creationTimestamp": created,
                     "labels": {"fusioninfer.io/service": service}},
        "spec": {"parentRefs": [{"name": gateway}], "rules": [{"matches": matches}]},
    }  # fmt: skip


OLD, NEW = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"


def test_the_younger_claimant_of_a_model_is_told_and_the_older_is_not() -> None:
    older, younger = route("a", OLD, "qwen", "sql"), route("b", NEW, "qwen")
    assert conflicts(younger, [older]) == [("qwen", "a", "ns/gw")]
    assert conflicts(older, [younger]) == []


def test_different_models_or_gateways_do_not_conflict() -> None:
    assert conflicts(route("b", NEW, "llama"), [route("a", OLD, "qwen")]) == []
    assert conflicts(route("b", NEW, "qwen", gateway="other"), [route("a", OLD, "qwen")]) == []


def test_same_age_is_decided_by_name_and_a_service_never_conflicts_with_itself() -> None:
    first, second = route("a", OLD, "qwen"), route("b", OLD, "qwen")
    assert conflicts(second, [first]) == [("qwen", "a", "ns/gw")]
    assert conflicts(first, [second]) == []
    assert conflicts(first, [route("a", "2020-01-01T00:00:00Z", "qwen")]) == []


def test_only_exact_model_header_matches_count() -> None:
    regex = route("a", OLD)
    regex["spec"]["rules"][0]["matches"] = [
        {"headers": [{"type": "RegularExpression", "name": "X-Gateway-Model-Name", "value": "q.*"}]},
        {"headers": [{"type": "Exact", "name": "x-other", "value": "qwen"}]},
    ]
    assert model_values(regex) == set()
