"""A structural OpenAPI v3 schema checker: what the apiserver checks of a custom resource before CEL.

Used for our own CRD (every example must be accepted, bad values refused with their path) and
for the upstream CRDs our builders emit objects of (the apiserver prunes unknown fields silently,
so a misspelt field would just vanish). CRD schemas are structural (types everywhere, no $ref),
so types, properties, required, enums, bounds, patterns and the combinators upstream CRDs use
cover them; a small checker rather than a dependency, so the Kubernetes extensions
(`x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`, ObjectMeta at `.metadata`)
mean exactly what they mean to the apiserver. CEL rules (`x-kubernetes-validations`) are not
evaluated: tests assert the ones they care about directly.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Errors of `value` against a structural schema node, each `<path>: <what>`; [] if accepted.

    Unknown fields of a typed object count as errors (the apiserver would prune them) unless the
    node preserves unknown fields; `.metadata` is ObjectMeta, which the apiserver validates itself."""
    here = path or "<root>"
    type_error = _type_error(value, schema)
    if type_error is not None:
        return [f"{here}: {type_error}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{here}: unsupported value {value!r}")
    for sub in schema.get("allOf", []):
        errors += validate(value, sub, path)
    for key in ("anyOf", "oneOf"):
        if key in schema and all(validate(value, sub, path) for sub in schema[key]):
            errors.append(f"{here}: matches none of {key}")
    if isinstance(value, str):
        errors += _check_string(value, schema, here)
    if isinstance(value, int | float) and not isinstance(value, bool):
        errors += _check_number(value, schema, here)
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errors.append(f"{here}: bad number of items")
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        errors += _check_object(value, schema, path, here)
    return errors


def _type_error(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` is not of the node's type (int-or-string is its own type), or None."""
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            return "must be an integer or a string"
        return None
    expected = schema.get("type")
    if expected is None:
        return None
    if not isinstance(value, _TYPES[expected]) or (expected in ("integer", "number") and isinstance(value, bool)):
        return f"must be of type {expected}"
    return None


def _check_string(value: str, schema: dict[str, Any], here: str) -> list[str]:
    errors: list[str] = []
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{here}: does not match {schema['pattern']}")
    if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
        errors.append(f"{here}: bad length")
    return errors


def _check_number(value: float, schema: dict[str, Any], here: str) -> list[str]:
    errors: list[str] = []
    if "minimum" in schema and (
        value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])
    ):
        errors.append(f"{here}: below minimum")
    if "maximum" in schema and (
        value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])
    ):
        errors.append(f"{here}: above maximum")
    return errors


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str, here: str) -> list[str]:
    errors: list[str] = []
    for name in schema.get("required") or []:
        if name not in value:
            errors.append(f"{path}.{name}: required")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{here}: more than {schema['maxProperties']} properties")
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if properties is not None and key in properties:
            errors += validate(item, properties[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            errors += validate(item, extra, f"{path}.{key}")
        elif _prunes_unknown(schema) and path != ".metadata":
            errors.append(f"{path}.{key}: unknown field")
    return errors


def _prunes_unknown(schema: dict[str, Any]) -> bool:
    """Whether the apiserver would prune fields this node does not list (a typed object that
    does not preserve unknown fields)."""
    return schema.get("type") == "object" and not schema.get("x-kubernetes-preserve-unknown-fields")
