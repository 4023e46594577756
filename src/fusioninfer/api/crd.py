"""Generate the InferenceService CustomResourceDefinition from the pydantic models.

The models are the one source of truth: this module turns their JSON schema into a
Kubernetes *structural* schema (no `$ref`, no `anyOf` of types, int-or-string marked as such),
adds the CEL rules that mirror `validation.py` (enforced by apiservers >= 1.25), printer
columns and the status subresource. A unit test fails when the checked-in CRD differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fusioninfer.api import naming
from fusioninfer.api.status_spec import InferenceServiceStatus
from fusioninfer.api.v1alpha1 import (
    CATEGORIES,
    GROUP,
    KIND,
    MAX_ROLES,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    InferenceServiceSpec,
)

CRD_PATH = Path("config/crd/bases") / f"{GROUP}_{PLURAL}.yaml"

_HAS_P = "self.roles.exists(r, r.componentType == 'prefiller')"
_HAS_D = "self.roles.exists(r, r.componentType == 'decoder')"

# CEL rules attached to a model's schema, by model name. Each mirrors a rule of validation.py.
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "InferenceServiceSpec": [
        {
            "rule": "self.roles.all(a, self.roles.filter(b, b.name == a.name).size() == 1)",
            "message": "role names must be unique",
        },
        {
            "rule": "self.roles.filter(r, r.componentType == 'router').size() <= 1",
            "message": "at most one router role",
        },
        {
            "rule": (
                "self.roles.exists(r, r.componentType == 'worker') ? "
                "(self.roles.filter(r, r.componentType == 'worker').size() == 1 && "
                "!self.roles.exists(r, r.componentType == 'prefiller' || r.componentType == 'decoder')) : "
                f"({_HAS_P} && {_HAS_D})"
            ),
            "message": (
                "a service has exactly one worker role (monolithic) or at least one prefiller and one "
                "decoder role (disaggregated), not both"
            ),
        },
        {
            "rule": (
                "!self.roles.exists(r, r.componentType == 'router' && has(r.strategy) && "
                f"r.strategy == 'pd-disaggregation') || ({_HAS_P} && {_HAS_D})"
            ),
            "message": "strategy pd-disaggregation requires prefiller and decoder roles",
        },
        {
            "rule": (
                "has(self.model) || self.roles.all(r, r.componentType == 'router' || has(r.template) || has(r.model))"
            ),
            "message": "a serving role needs a pod template or a model (its own or spec.model)",
        },
    ],
    "Role": [
        {
            "rule": (
                "self.componentType == 'router' || (!has(self.strategy) && !has(self.httproute) && "
                "!has(self.endpointPickerConfig) && !has(self.endpointPicker) && !has(self.gateway))"
            ),
            "message": "strategy, httproute, endpointPickerConfig, endpointPicker and gateway are router-only",
        },
        {
            "rule": (
                "self.componentType != 'router' || "
                "(!has(self.multinode) && !has(self.podReplicas) && !has(self.engine) && !has(self.rollout) && "
                "!has(self.model) && !has(self.engineArgs) && !has(self.speculativeDecoding) && "
                "!has(self.resources) && !has(self.autoscaling))"
            ),
            "message": (
                "multinode, podReplicas, engine, rollout, model, engineArgs, speculativeDecoding, resources and "
                "autoscaling are not allowed on a router role"
            ),
        },
        {
            "rule": "!(has(self.replicas) && has(self.roleReplicas))",
            "message": "roleReplicas is a deprecated alias of replicas; set only replicas",
        },
        {
            "rule": "!(has(self.multinode) && has(self.podReplicas))",
            "message": "podReplicas is a deprecated alias of multinode.nodeCount; set only multinode",
        },
    ],
}

# Extra schema keywords that only the CRD gets (pydantic validation gives better messages).
EXTRA_KEYWORDS: dict[tuple[str, str], dict[str, Any]] = {
    ("Role", "name"): {"pattern": naming.DNS1035_LABEL.pattern},
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "Every role serves and the route is accepted."},
    {"name": "Roles Ready", "type": "string", "jsonPath": ".status.readyRoles",
     "description": "Serving roles with all replicas ready, of all."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1,
     "description": "Why: the reason of the first False of Valid, PrerequisitesMet, Ready."},
    {"name": "Models", "type": "string", "jsonPath": ".status.models", "priority": 1},
    {"name": "Gateway", "type": "string", "jsonPath": ".status.route", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]  # fmt: skip

_DROP = {"title", "default", "additionalProperties", "$defs"}


class _Converter:
    def __init__(self, defs: dict[str, Any]):
        self.defs = defs

    def convert(self, schema: dict[str, Any], model: str | None = None) -> dict[str, Any]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            out = self.convert(self.defs[name], model=name)
            if "description" in schema:
                out["description"] = schema["description"]
            return out
        if "anyOf" in schema:
            return self._any_of(schema, model)
        return self._plain(schema, model)

    def _plain(self, schema: dict[str, Any], model: str | None) -> dict[str, Any]:
        kind = schema.get("type")
        out: dict[str, Any] = {}
        if "const" in schema:
            out["type"] = "string"
            out["enum"] = [schema["const"]]
        elif kind is not None:
            out["type"] = kind
        if "enum" in schema:
            out["enum"] = list(schema["enum"])
            out.setdefault("type", "string")
        for key in (
            "description",
            "format",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
            "pattern",
            "minItems",
            "maxItems",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
        ):
            if key in schema:
                out[key] = schema[key]
        for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in schema:
                out[flag] = schema[bound]
                out[bound] = True
        if kind == "array" and "items" in schema:
            out["items"] = self.convert(schema["items"])
        if kind == "object":
            if "properties" in schema:
                out["properties"] = {
                    prop: self._property(model, prop, sub) for prop, sub in schema["properties"].items()
                }
                if schema.get("required"):
                    out["required"] = list(schema["required"])
                if model in CEL_RULES:
                    out["x-kubernetes-validations"] = CEL_RULES[model]
            elif isinstance(schema.get("additionalProperties"), dict) and schema["additionalProperties"]:
                out["additionalProperties"] = self.convert(schema["additionalProperties"])
            elif not out.get("x-kubernetes-preserve-unknown-fields"):
                out["x-kubernetes-preserve-unknown-fields"] = True
        return {k: v for k, v in out.items() if k not in _DROP or k == "additionalProperties"}

    def _property(self, model: str | None, prop: str, sub: dict[str, Any]) -> dict[str, Any]:
        out = self.convert(sub)
        out.update(EXTRA_KEYWORDS.get((model or "", prop), {}))
        return out

    def _any_of(self, schema: dict[str, Any], model: str | None) -> dict[str, Any]:
        members = [m for m in schema["anyOf"] if m.get("type") != "null"]
        types = {m.get("type") for m in members}
        if len(members) == 1:
            merged = {**members[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
            return self.convert(merged, model)
        if types == {"integer", "string"}:
            out: dict[str, Any] = {"x-kubernetes-int-or-string": True}
            if "description" in schema:
                out["description"] = schema["description"]
            patterns = [m["pattern"] for m in members if "pattern" in m]
            if patterns:
                # Pattern applies to the string form only; integers pass untouched.
                out["pattern"] = patterns[0]
            for member in members:
                if member.get("type") == "integer":
                    # Likewise bounds apply to the integer form only (no negative maxSurge).
                    out.update({k: member[k] for k in ("minimum", "maximum") if k in member})
            return out
        raise ValueError(f"cannot express anyOf {schema['anyOf']} in a structural schema")


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version."""
    spec_schema = InferenceServiceSpec.model_json_schema(by_alias=True)
    status_schema = InferenceServiceStatus.model_json_schema(by_alias=True)
    spec = _Converter(spec_schema.get("$defs", {})).convert(spec_schema, model="InferenceServiceSpec")
    status = _Converter(status_schema.get("$defs", {})).convert(status_schema, model="InferenceServiceStatus")
    spec["properties"]["roles"]["maxItems"] = MAX_ROLES
    return {
        "type": "object",
        "description": "One LLM service: roles (worker, or prefiller + decoder, plus an optional router), "
        "their replicas, multi-node layout and pod templates, and how they are scheduled.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition manifest."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    header = "# Generated from src/fusioninfer/api/v1alpha1.py by `fusioninfer crd`. Do not edit.\n"
    return header + yaml.safe_dump(crd(), sort_keys=False, width=120)
