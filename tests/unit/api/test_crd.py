"""The InferenceService CRD: generated from the models, checked in, structural, and accepting every example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.generated import assert_up_to_date
from tests.support.schema import validate
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.crd import CRD_PATH, crd, crd_yaml, openapi_schema
from fusioninfer.kube.yaml import load_all

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / CRD_PATH
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
REGENERATE = f"fusioninfer crd > {CRD_PATH.as_posix()}"


def checked_in() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CHECKED_IN.read_text(encoding="utf-8"))
    return loaded


def version() -> dict[str, Any]:
    (served,) = checked_in()["spec"]["versions"]
    return dict(served)


def schema() -> dict[str, Any]:
    return dict(version()["schema"]["openAPIV3Schema"])


def role_schema() -> dict[str, Any]:
    return dict(schema()["properties"]["spec"]["properties"]["roles"]["items"])


# --- the checked-in file is exactly what the models generate -------------------------------------
def test_checked_in_crd_is_up_to_date() -> None:
    assert CRD_PATH.as_posix() == "config/crd/bases/fusioninfer.io_inferenceservices.yaml"
    current = CHECKED_IN.read_text(encoding="utf-8")
    assert_up_to_date("CRD", str(CRD_PATH), current, crd_yaml(), REGENERATE)


def test_generated_yaml_is_the_crd_dict() -> None:
    assert yaml.safe_load(crd_yaml()) == crd()
    assert crd_yaml().startswith("# Generated from src/fusioninfer/api/v1alpha1.py by `fusioninfer crd`.")


def test_generation_is_deterministic() -> None:
    assert crd_yaml() == crd_yaml()
    assert openapi_schema() == schema()


# --- names, scope, subresources, columns -----------------------------------------------------------
def test_names_and_scope() -> None:
    manifest = checked_in()
    assert manifest["apiVersion"] == "apiextensions.k8s.io/v1"
    assert manifest["kind"] == "CustomResourceDefinition"
    assert manifest["metadata"]["name"] == "inferenceservices.fusioninfer.io"
    spec = manifest["spec"]
    assert spec["group"] == "fusioninfer.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "InferenceService",
        "listKind": "InferenceServiceList",
        "plural": "inferenceservices",
        "singular": "inferenceservice",
        "shortNames": ["fisvc"],
        "categories": ["fusioninfer"],
    }


def test_short_name_is_not_kserves_isvc() -> None:
    assert "isvc" not in checked_in()["spec"]["names"]["shortNames"]


def test_one_served_storage_version_with_status_subresource() -> None:
    v = version()
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    assert v["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {
        c["name"]: (c["type"], c["jsonPath"], c.get("priority", 0)) for c in version()["additionalPrinterColumns"]
    }
    assert columns == {
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status', 0),
        "Roles Ready": ("string", ".status.readyRoles", 0),
        "Phase": ("string", ".status.phase", 0),
        "Age": ("date", ".metadata.creationTimestamp", 0),
        "Reason": ("string", ".status.reason", 1),
        "Models": ("string", ".status.models", 1),
        "Gateway": ("string", ".status.route", 1),
        "Message": ("string", ".status.message", 1),
    }
    assert len({name.upper() for name in columns}) == len(columns), "kubectl upper-cases names: keep them distinct"
    status = schema()["properties"]["status"]["properties"]
    assert {"readyRoles", "phase", "conditions", "reason", "message", "models", "route"} <= set(status)


WORDS_USERS_SHOULD_NOT_READ = re.compile(r"\b(seeds?|issues?|TODO|FIXME)\b", re.IGNORECASE)


def test_every_field_is_described_for_users() -> None:
    """`kubectl explain` shows these: each field says what it is, without internal notes."""
    missing: list[str] = []
    internal: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        text = node.get("description")
        if path and not text and not path.endswith("[]"):
            missing.append(path)
        if text and WORDS_USERS_SHOULD_NOT_READ.search(text):
            internal.append(f"{path}: {text}")
        for key, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{key}" if path else key)
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"].get("properties"):
            walk(node["additionalProperties"], f"{path}{{}}")

    props = schema()["properties"]
    walk(props["spec"], "spec")
    walk(props["status"], "status")
    assert missing == []
    assert internal == []
    for column in version()["additionalPrinterColumns"]:
        assert not WORDS_USERS_SHOULD_NOT_READ.search(column.get("description", ""))


# --- structural schema ---------------------------------------------------------------------------
def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path, e.g. `.properties.spec.properties.roles.items`."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_has_no_refs_or_type_unions() -> None:
    text = yaml.safe_dump(schema())
    assert "$ref" not in text
    for path, node in walk(schema()):
        for combinator in ("anyOf", "oneOf", "allOf"):
            assert combinator not in node, f"{path}: {combinator} is not structural"
        assert "not" not in node, path
        for key in ("$defs", "definitions"):
            assert key not in node, path


def test_every_node_has_a_type_or_is_int_or_string() -> None:
    for path, node in walk(schema()):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, f"{path}: int-or-string must not also declare a type"
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path


def test_every_object_says_what_it_holds() -> None:
    for path, node in walk(schema()):
        if node.get("type") != "object" or path == ".metadata":
            continue
        kinds = [k for k in ("properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields") if k in node]
        assert kinds, f"{path}: an object needs properties, additionalProperties or preserve-unknown-fields"
        assert not ("properties" in node and "additionalProperties" in node), f"{path}: both are not structural"


def test_arrays_have_items_and_required_names_exist() -> None:
    for path, node in walk(schema()):
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), path
        for name in node.get("required") or []:
            assert name in node.get("properties", {}), f"{path}: required {name!r} is not a property"


def test_no_pydantic_leftovers() -> None:
    for path, node in walk(schema()):
        assert "title" not in node, path
        assert "default" not in node, f"{path}: defaults are applied in code, never by the apiserver"


def test_rollout_values_are_int_or_string() -> None:
    rollout = role_schema()["properties"]["rollout"]["properties"]
    for field in ("maxSurge", "maxUnavailable"):
        assert rollout[field]["x-kubernetes-int-or-string"] is True


def test_template_keeps_labels_and_annotations_and_preserves_the_pod_spec() -> None:
    template = role_schema()["properties"]["template"]
    meta = template["properties"]["metadata"]
    for key in ("labels", "annotations"):
        assert meta["properties"][key]["type"] == "object"
        assert meta["properties"][key]["additionalProperties"] == {"type": "string"}
    assert meta.get("x-kubernetes-preserve-unknown-fields") is not True  # labels would not be typed
    pod_spec = template["properties"]["spec"]
    assert (pod_spec["type"], pod_spec["x-kubernetes-preserve-unknown-fields"]) == ("object", True)
    assert "PodSpec" in pod_spec["description"]


def test_httproute_and_picker_resources_preserve_unknown_fields() -> None:
    props = role_schema()["properties"]
    assert props["httproute"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["endpointPicker"]["properties"]["resources"]["x-kubernetes-preserve-unknown-fields"] is True


def test_role_fields_and_bounds() -> None:
    role = role_schema()
    assert role["required"] == ["name", "componentType"]
    props = role["properties"]
    assert props["name"]["pattern"] == "^[a-z]([-a-z0-9]*[a-z0-9])?$"
    assert props["name"]["maxLength"] == 63
    assert props["componentType"]["enum"] == ["worker", "prefiller", "decoder", "router"]
    assert (props["replicas"]["minimum"], props["replicas"]["type"]) == (0, "integer")
    assert props["multinode"]["properties"]["nodeCount"]["minimum"] == 1
    assert props["multinode"]["required"] == ["nodeCount"]
    roles = schema()["properties"]["spec"]["properties"]["roles"]
    # CEL cost estimation needs bounded lists.
    assert (roles["minItems"], roles["maxItems"]) == (1, 16)


def test_status_components_are_a_map_of_component_status() -> None:
    components = schema()["properties"]["status"]["properties"]["components"]
    item = components["additionalProperties"]
    assert set(item["properties"]) == {
        "desiredReplicas",
        "readyReplicas",
        "nodesPerReplica",
        "totalPods",
        "readyPods",
        "phase",
        "lastUpdateTime",
    }
    conditions = schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


# --- CEL rules -------------------------------------------------------------------------------------
def test_topology_rules_are_cel_validations_on_the_spec() -> None:
    rules = {r["message"]: r["rule"] for r in schema()["properties"]["spec"]["x-kubernetes-validations"]}
    assert set(rules) == {
        "role names must be unique",
        "at most one router role",
        "a service has exactly one worker role (monolithic) or at least one prefiller and one decoder role "
        "(disaggregated), not both",
        "strategy pd-disaggregation requires prefiller and decoder roles",
        "a serving role needs a pod template or a model (its own or spec.model)",
    }
    assert "'router'" in rules["at most one router role"]
    needs = rules["a serving role needs a pod template or a model (its own or spec.model)"]
    assert "has(r.template)" in needs
    assert "has(r.model)" in needs
    assert "has(self.model)" in needs
    assert "pd-disaggregation" in rules["strategy pd-disaggregation requires prefiller and decoder roles"]


def test_role_rules_are_cel_validations_on_each_role() -> None:
    rules = {r["message"]: r["rule"] for r in role_schema()["x-kubernetes-validations"]}
    router_only = rules["strategy, httproute, endpointPickerConfig, endpointPicker and gateway are router-only"]
    for field in ("strategy", "httproute", "endpointPickerConfig", "endpointPicker", "gateway"):
        assert f"has(self.{field})" in router_only
    not_on_router = rules[
        "multinode, podReplicas, engine, rollout, model, engineArgs, speculativeDecoding, resources and "
        "autoscaling are not allowed on a router role"
    ]
    for field in ("multinode", "podReplicas", "engine", "rollout", "model", "engineArgs", "speculativeDecoding"):
        assert f"has(self.{field})" in not_on_router
    assert "roleReplicas" in rules["roleReplicas is a deprecated alias of replicas; set only replicas"]
    assert "podReplicas" in rules["podReplicas is a deprecated alias of multinode.nodeCount; set only multinode"]


def test_cel_rules_only_name_fields_that_exist() -> None:
    role_fields = set(role_schema()["properties"])
    for rule in role_schema()["x-kubernetes-validations"]:
        for field in re.findall(r"self\.(\w+)", rule["rule"]):
            assert field in role_fields, (field, rule["rule"])
    for rule in schema()["properties"]["spec"]["x-kubernetes-validations"]:
        for field in re.findall(r"\br\.(\w+)", rule["rule"]):
            assert field in role_fields, (field, rule["rule"])


# --- the structural-schema checker (tests/support/schema.py) against our CRD ----------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_accepted_by_the_crd_schema(example: Path) -> None:
    docs = load_all(example.read_text(encoding="utf-8"))
    assert docs
    for doc in docs:
        assert validate(doc, schema()) == []


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 5


# `.obj()` hands out a fresh copy: each test mutates its own.
MINIMAL = (
    InferenceServiceWrapper()
    .labels({"any": "thing"})
    .worker(
        "w",
        container={"name": "c", "image": "i"},
        pod_labels={"a": "b"},
        rollout={"maxSurge": "25%", "maxUnavailable": 1},
    )
)


def test_checker_accepts_a_minimal_service() -> None:
    assert validate(MINIMAL.obj(), schema()) == []


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda r: r.update(replicas="3"), ".spec.roles[0].replicas: must be of type integer"),
        (lambda r: r.update(replicas=True), ".spec.roles[0].replicas: must be of type integer"),
        (lambda r: r.update(replicas=-1), ".spec.roles[0].replicas: below minimum"),
        (lambda r: r.update(componentType="boss"), ".spec.roles[0].componentType: unsupported value 'boss'"),
        (lambda r: r.update(name="Bad_Name"), ".spec.roles[0].name: does not match ^[a-z]([-a-z0-9]*[a-z0-9])?$"),
        (lambda r: r.update(extra=1), ".spec.roles[0].extra: unknown field"),
        (lambda r: r.update(multinode={}), ".spec.roles[0].multinode.nodeCount: required"),
        (
            lambda r: r.update(rollout={"maxSurge": 1.5}),
            ".spec.roles[0].rollout.maxSurge: must be an integer or a string",
        ),
        (lambda r: r.update(rollout={"maxSurge": "x"}), ".spec.roles[0].rollout.maxSurge: does not match "),
        (
            lambda r: r["template"]["metadata"]["labels"].update(n=1),
            ".spec.roles[0].template.metadata.labels.n: must be of type string",
        ),
        (
            lambda r: r.update(endpointPicker={"plugins": {"queueScorer": {"weight": 0}}}),
            ".spec.roles[0].endpointPicker.plugins.queueScorer.weight: below minimum",
        ),
    ],
)
def test_checker_rejects_what_the_apiserver_rejects(mutate: Any, error: str) -> None:
    doc = MINIMAL.obj()
    mutate(doc["spec"]["roles"][0])
    assert any(e.startswith(error) for e in validate(doc, schema())), validate(doc, schema())


def test_checker_keeps_unknown_pod_spec_fields() -> None:
    doc = MINIMAL.obj()
    doc["spec"]["roles"][0]["template"]["spec"]["futureField"] = {"x": [1]}
    assert validate(doc, schema()) == []
