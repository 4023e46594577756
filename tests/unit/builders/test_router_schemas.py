"""Our InferencePool, HTTPRoute and Gateway manifests against the upstream CRDs' OpenAPI schemas.

The apiserver prunes fields a CRD schema does not know, silently: a misspelt field would just
vanish. So every field we emit must exist in the schema of the pinned versions (GIE v1.2.1,
Gateway API v1.4.1), with the right type, enum value and bounds. The schemas are read from
the bundled upstream CRDs (`fusioninfer_dev.localcluster.crds`, byte for byte as published).

The structural checker is tests/support/schema.py (shared with the CRD and gang tests). CEL
rules (`x-kubernetes-validations`) are not evaluated there; the ones that concern our objects
are asserted directly below.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from tests.support.schema import validate
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.validation import parse
from fusioninfer.builders import build
from fusioninfer.builders.context import Manifest
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR

UPSTREAM = BUNDLED_CRD_DIR
CRD_FILES = {
    ("inference.networking.k8s.io", "InferencePool"): (
        "gateway-api-inference-extension-v1.2.1/inference.networking.k8s.io_inferencepools.yaml"
    ),
    ("gateway.networking.k8s.io", "HTTPRoute"): "gateway-api-v1.4.1/gateway.networking.k8s.io_httproutes.yaml",
    ("gateway.networking.k8s.io", "Gateway"): "gateway-api-v1.4.1/gateway.networking.k8s.io_gateways.yaml",
}

_SCHEMAS: dict[tuple[str, str, str], dict[str, Any]] = {}


def schema_for(manifest: Manifest) -> dict[str, Any]:
    group, _, version = str(manifest["apiVersion"]).rpartition("/")
    key = (group, str(manifest["kind"]), version)
    if key not in _SCHEMAS:
        crd = yaml.safe_load((UPSTREAM / CRD_FILES[(group, key[1])]).read_text())
        served = {v["name"]: v for v in crd["spec"]["versions"]}
        assert version in served, f"{manifest['kind']} {version} is not served by the pinned CRD"
        assert served[version]["served"]
        _SCHEMAS[key] = served[version]["schema"]["openAPIV3Schema"]
    return _SCHEMAS[key]


def _checked(manifest: Manifest) -> dict[str, Any]:
    """The part the CRD schema covers (metadata is ObjectMeta, validated by the apiserver itself)."""
    return {k: v for k, v in manifest.items() if k != "metadata"}


FULL_ROUTE = {
    "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "http", "port": 80}],
    "hostnames": ["llm.example.com", "*.models.example.com"],
    "rules": [
        {
            "name": "chat",
            "matches": [
                {"path": {"type": "Exact", "value": "/v1/chat/completions"}, "method": "POST"},
                {"headers": [{"name": "x-model", "value": "qwen"}], "queryParams": [{"name": "a", "value": "b"}]},
            ],
            "filters": [
                {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}}
            ],
            "timeouts": {"request": "600s", "backendRequest": "590s"},
        },
        {},
    ],
}


CASES = {
    "prefix-cache": parse(InferenceServiceWrapper().namespace("ns").router().worker("w").obj()),
    "pd": parse(
        InferenceServiceWrapper().namespace("ns").router("pd-disaggregation").prefiller("p").decoder("d").obj()
    ),
    "full-route-and-gateway": parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(httproute=FULL_ROUTE, gateway={"className": "istio", "listenerPort": 8080, "serviceType": "ClusterIP"})
        .worker("w")
        .obj()
    ),
    "gateway-only": parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(parent=None, gateway={"className": "kgateway"})
        .worker("w")
        .obj()
    ),
}


def _routing_objects(isvc: Any) -> list[Manifest]:
    return [o for o in build(isvc).objects if o["kind"] in ("InferencePool", "HTTPRoute", "Gateway")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_routing_objects_match_the_upstream_schemas(case: str) -> None:
    objects = _routing_objects(CASES[case])
    assert {o["kind"] for o in objects} >= {"InferencePool", "HTTPRoute"}
    for obj in objects:
        assert validate(_checked(obj), schema_for(obj)) == [], obj["kind"]


def test_the_validator_catches_what_the_apiserver_would_prune_or_reject() -> None:
    pool = next(o for o in _routing_objects(CASES["prefix-cache"]) if o["kind"] == "InferencePool")
    schema = schema_for(pool)
    bad = _checked(pool)
    bad["spec"] = {**bad["spec"], "targetPortNumber": 8000}  # the v1alpha2 field name
    assert any("targetPortNumber: unknown field" in e for e in validate(bad, schema))
    bad = _checked(pool)
    bad["spec"] = {**bad["spec"], "endpointPickerRef": {**bad["spec"]["endpointPickerRef"], "failureMode": "Open"}}
    assert any("failureMode" in e for e in validate(bad, schema))


def test_cel_rules_that_concern_our_objects() -> None:
    """What the v1 InferencePool and v1 HTTPRoute CEL rules demand, checked by hand (no apiserver needed)."""
    for case in CASES.values():
        for obj in _routing_objects(case):
            spec = obj["spec"]
            if obj["kind"] == "InferencePool":
                numbers = [p["number"] for p in spec["targetPorts"]]
                assert len(numbers) == len(set(numbers)), "port numbers must be unique"
                ref = spec["endpointPickerRef"]
                assert ref["kind"] != "Service" or "port" in ref, "port is required when kind is Service"
            if obj["kind"] == "HTTPRoute":
                for rule in spec["rules"]:
                    timeouts = rule.get("timeouts", {})
                    if "backendRequest" in timeouts:
                        assert _seconds(timeouts["backendRequest"]) <= _seconds(timeouts["request"])
                    for match in rule["matches"]:
                        if match["path"]["type"] == "PathPrefix":
                            assert match["path"]["value"].startswith("/")


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)", duration))
