"""The local gateway's statuses: which parents get status, and what it says."""

from __future__ import annotations

from typing import Any

from fusioninfer_dev.localcluster.gateway.status import (
    CONTROLLER_NAME,
    accepted_by,
    gateway_addresses,
    gateway_status,
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


def test_a_pool_without_a_serving_picker_makes_the_route_unresolved() -> None:
    why = {("ns", "pool"): "endpoint picker pod p is not serving yet"}
    (parent,) = route_parent_statuses(route("gw"), {("ns", "gw"): gateway()}, set(), {("ns", "pool")}, "t", why)
    assert conds(parent)["ResolvedRefs"] == ("False", "EndpointPickerUnavailable")
    assert "InferencePool ns/pool: endpoint picker pod p is not serving yet" in parent["conditions"][1]["message"]
    (other,) = route_parent_statuses(
        route("gw", backend="other"), {("ns", "gw"): gateway()}, set(), {("ns", "other")}, "t", why
    )
    assert conds(other)["ResolvedRefs"] == ("True", "ResolvedRefs"), "only routes to that pool"


def test_the_pool_reports_why_its_picker_does_not_serve() -> None:
    pool = {"metadata": {"name": "pool", "namespace": "ns"}, "spec": {"endpointPickerRef": {"name": "epp"}}}
    (ok,) = pool_parent_statuses(pool, [("ns", "gw")], {("ns", "epp")}, "t")
    assert conds(ok)["ResolvedRefs"] == ("True", "ResolvedRefs")
    (down,) = pool_parent_statuses(pool, [("ns", "gw")], {("ns", "epp")}, "t", "it crashed")
    assert conds(down)["ResolvedRefs"] == ("False", "InvalidExtensionRef")
    assert down["conditions"][1]["message"] == "it crashed"


def gateway_with(name: str, address: str | None = None) -> dict[str, Any]:
    status = {"addresses": [{"type": "IPAddress", "value": address}]} if address else {}
    return {"metadata": {"name": name, "namespace": "ns"}, "status": status}


def test_gateway_addresses_are_unique_stable_and_in_the_first_subnet_of_the_block() -> None:
    gateways = {("ns", f"gw-{i}"): gateway_with(f"gw-{i}") for i in range(40)}
    addresses = gateway_addresses(gateways, "127.77.0.0/16")
    assert len(set(addresses.values())) == 40
    assert all(a.startswith("127.77.0.") and a not in ("127.77.0.0", "127.77.0.1") for a in addresses.values())
    assert gateway_addresses(gateways, "127.77.0.0/16") == addresses, "the same objects, the same answer"


def test_a_gateway_keeps_the_address_in_its_status() -> None:
    hashed = gateway_addresses({("ns", "a"): gateway_with("a")}, "127.77.0.0/16")[("ns", "a")]
    gateways = {("ns", "a"): gateway_with("a"), ("ns", "b"): gateway_with("b", hashed)}
    addresses = gateway_addresses(gateways, "127.77.0.0/16")
    assert addresses[("ns", "b")] == hashed, "an address already handed out is kept"
    assert addresses[("ns", "a")] != hashed, "and not handed out twice"


def test_gateway_status_says_whether_envoy_serves_it() -> None:
    gw = gateway()
    serving = gateway_status(gw, {"http": 1}, "t", address="127.77.0.9", programmed=True)
    assert serving["addresses"] == [{"type": "IPAddress", "value": "127.77.0.9"}]
    assert {c["type"]: c["status"] for c in serving["conditions"]} == {"Accepted": "True", "Programmed": "True"}
    pending = gateway_status(gw, {}, "t", address="127.77.0.9", programmed=False)
    assert {c["type"]: c["status"] for c in pending["conditions"]}["Programmed"] == "False"
    https = {**gw, "spec": {"listeners": [{"name": "tls", "port": 443, "protocol": "HTTPS"}]}}
    (listener,) = gateway_status(https, {}, "t", address="127.77.0.9", programmed=True)["listeners"]
    assert {c["type"]: c["reason"] for c in listener["conditions"]}["Accepted"] == "UnsupportedProtocol"
