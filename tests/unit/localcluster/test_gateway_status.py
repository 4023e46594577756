"""Fake gateway controller: which parents get status, and what it says."""

from __future__ import annotations

from typing import Any

from fusioninfer.localcluster.gateway.status import (
    CONTROLLER_NAME,
    accepted_by,
    pool_parent_statuses,
    route_parent_statuses,
)


def gateway(ns: str = "ns", allowed: str = "Same") -> dict[str, Any]:
    listener = {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": allowed}}}
    return {"metadata": {"name": "gw", "namespace": ns}, "spec": {"listeners": [listener]}}


def route(*parents: str, backend: str = "pool", status: Any = None) -> dict[str, Any]:
    ref = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": backend}
    return {
        "metadata": {"name": "r", "namespace": "ns", "generation": 2},
        "spec": {"parentRefs": [{"name": p} for p in parents], "rules": [{"backendRefs": [ref]}]},
        "status": status or {},
    }


def conds(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def test_only_parents_naming_our_existing_gateways_get_status() -> None:
    parents = route_parent_statuses(route("gw", "missing"), {("ns", "gw"): gateway()}, set(), {("ns", "pool")}, "t")
    assert [p["parentRef"]["name"] for p in parents] == ["gw"]
    assert parents[0]["controllerName"] == CONTROLLER_NAME
    assert conds(parents[0]) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert parents[0]["conditions"][0]["observedGeneration"] == 2
    assert accepted_by(parents, "ns") == [("ns", "gw")]


def test_missing_backend_and_foreign_namespace() -> None:
    parents = route_parent_statuses(route("gw", backend="nope"), {("ns", "gw"): gateway()}, set(), set(), "t")
    assert conds(parents[0])["ResolvedRefs"] == ("False", "BackendNotFound")
    other = {("ns", "gw"): gateway(ns="other")}
    r = route()
    r["spec"]["parentRefs"] = [{"name": "gw", "namespace": "other"}]
    parents = route_parent_statuses(r, {("other", "gw"): gateway(ns="other")} | other, set(), {("ns", "pool")}, "t")
    assert conds(parents[0])["Accepted"] == ("False", "NotAllowedByListeners")
    assert accepted_by(parents, "ns") == []


def test_entries_of_other_controllers_are_kept_and_timestamps_stable() -> None:
    foreign = {"parentRef": {"name": "x"}, "controllerName": "example.com/other", "conditions": []}
    first = route_parent_statuses(
        route("gw", status={"parents": [foreign]}), {("ns", "gw"): gateway()}, set(), {("ns", "pool")}, "t1"
    )
    assert first[0] == foreign
    again = route_parent_statuses(
        route("gw", status={"parents": first}), {("ns", "gw"): gateway()}, set(), {("ns", "pool")}, "t2"
    )
    assert again == first


def test_pool_parents_report_the_endpoint_picker_reference() -> None:
    pool = {
        "metadata": {"name": "pool", "namespace": "ns"},
        "spec": {"endpointPickerRef": {"name": "epp", "port": {"number": 9002}}},
    }
    ok = pool_parent_statuses(pool, [("ns", "gw")], {("ns", "epp")}, "t")
    assert conds(ok[0]) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    bad = pool_parent_statuses(pool, [("ns", "gw")], set(), "t")
    assert conds(bad[0])["ResolvedRefs"] == ("False", "InvalidExtensionRef")
    assert pool_parent_statuses(pool, [], set(), "t") == []
