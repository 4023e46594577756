"""The API reference (`docs/api-reference.md`), generated from the pydantic models.

The models in `v1alpha1.py` are the single source of truth; this module walks their JSON schema
(the same one the CRD is generated from) from `InferenceService` down, and writes one Markdown
section per struct and per enumeration: every field by its wire (camelCase) name, its type, whether
it is required, its default, its constraints and its description, plus the CEL rules and the
extra CRD keywords of `crd.py`. Pure: text in, text out; a unit test fails when the checked-in
file differs.

    python -m fusioninfer.api.reference > docs/api-reference.md
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fusioninfer.api.crd import CEL_RULES, EXTRA_KEYWORDS, PRINTER_COLUMNS
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL, SHORT_NAMES, InferenceService

REFERENCE_PATH = Path("docs/api-reference.md")
REGENERATE = f"python -m fusioninfer.api.reference > {REFERENCE_PATH.as_posix()}"

# Kubernetes types we model only partly (the fields the operator reads): linked, not listed.
# Name -> (documentation, what a field of that type holds).
EXTERNAL_TYPES: dict[str, tuple[str, str]] = {
    "ObjectMeta": (
        "https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/",
        "Standard Kubernetes object metadata (name, namespace, labels, annotations, ...).",
    ),
}

Schema = dict[str, Any]

# Constraint keywords, in the order they are shown, with how each one reads.
_CONSTRAINTS: tuple[tuple[str, str], ...] = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("minItems", "items >= {}"),
    ("maxItems", "items <= {}"),
    ("pattern", "pattern `{}`"),
)


def _ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _anchor(name: str) -> str:
    return f"#{name.lower()}"


def _cell(text: str) -> str:
    """Table-safe: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


# Keys of a field's schema that describe the field, not one alternative of its type.
_FIELD_KEYS = frozenset({"anyOf", "default", "description", "title"})


def _members(schema: Schema) -> list[Schema]:
    """The non-null alternatives of a field's schema (a plain schema is its own only member).

    An optional field is `anyOf: [T, null]` with keywords such as `format` next to `anyOf`;
    those belong to T.
    """
    if "anyOf" not in schema:
        return [schema]
    members = [m for m in schema["anyOf"] if m.get("type") != "null"]
    if len(members) == 1:
        siblings = {k: v for k, v in schema.items() if k not in _FIELD_KEYS}
        return [{**members[0], **siblings}]
    return members


def _is_int_or_string(members: list[Schema]) -> bool:
    return len(members) == 2 and {m.get("type") for m in members} == {"integer", "string"}


def type_name(schema: Schema) -> str:
    """A field's type in Markdown: primitives, `[]T`, `map[string]T`, int-or-string, links to structs."""
    members = _members(schema)
    if _is_int_or_string(members):
        return "int-or-string"
    if len(members) != 1:
        return " or ".join(type_name(m) for m in members)
    member = members[0]
    name = _ref_name(member)
    if name in EXTERNAL_TYPES:
        return f"[{name}]({EXTERNAL_TYPES[name][0]})"
    if name is not None:
        return f"[{name}]({_anchor(name)})"
    if "const" in member:
        return f'`"{member["const"]}"`'
    kind = member.get("type")
    if kind == "array":
        return "[]" + type_name(member.get("items") or {})
    if kind == "object":
        values = member.get("additionalProperties")
        if isinstance(values, dict) and values:
            return "map[string]" + type_name(values)
        return "object (free-form)"
    if "enum" in member:
        return " \\| ".join(f"`{v}`" for v in member["enum"])
    if kind is None:
        return "any"
    fmt = member.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def constraints(schema: Schema, extra: Schema | None = None) -> list[str]:
    """Human-readable constraints of a field (every alternative's), plus CRD-only keywords."""
    out: list[str] = []
    members = _members(schema)
    for member in members:
        for key, template in _CONSTRAINTS:
            if key in member:
                prefix = f"{member.get('type')}: " if _is_int_or_string(members) else ""
                out.append(prefix + template.format(member[key]))
    for key, template in _CONSTRAINTS:
        if extra and key in extra:
            out.append(template.format(extra[key]))
    return out


def _default(field: Schema) -> str:
    if "default" not in field or field["default"] is None:
        return ""
    value = field["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def _referenced(schema: Schema) -> Iterator[str]:
    """Names of the definitions a schema refers to, in order of appearance."""
    name = _ref_name(schema)
    if name is not None:
        yield name
    for key in ("anyOf", "allOf", "oneOf"):
        for member in schema.get(key) or []:
            yield from _referenced(member)
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            yield from _referenced(sub)
    for sub in (schema.get("properties") or {}).values():
        yield from _referenced(sub)


def ordered_definitions(root: Schema) -> list[tuple[str, Schema]]:
    """The root and every definition it reaches, depth-first in field order (each once).

    Depth-first keeps a struct's own types right after it (Role, then ComponentType,
    Multinode, ...), which reads better than breadth-first. External types are left out.
    """
    defs: dict[str, Schema] = root.get("$defs") or {}
    order: list[tuple[str, Schema]] = []
    seen: set[str] = set()

    def visit(name: str, schema: Schema) -> None:
        seen.add(name)
        order.append((name, schema))
        for ref in _referenced(schema):
            if ref not in seen and ref in defs and ref not in EXTERNAL_TYPES:
                visit(ref, defs[ref])

    visit(str(root.get("title", "root")), root)
    return order


def _enum_section(name: str, schema: Schema) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    lines += ["One of: " + ", ".join(f"`{v}`" for v in schema["enum"]) + ".", ""]
    return lines


def _description(field: Schema, defs: dict[str, Schema]) -> str:
    """The field's own description, else the docstring of the struct or enumeration it holds."""
    if field.get("description"):
        return str(field["description"])
    members = _members(field)
    name = _ref_name(members[0]) if len(members) == 1 else None
    if name in EXTERNAL_TYPES:
        return EXTERNAL_TYPES[name][1]
    if name is not None and name in defs:
        return str(defs[name].get("description", ""))
    return ""


def _struct_section(name: str, schema: Schema, defs: dict[str, Schema]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    extra = schema.get("additionalProperties")
    if extra is False:
        lines += ["Unknown fields are rejected.", ""]
    elif extra is True:
        lines += ["Fields not listed are accepted and kept as they are.", ""]
    properties: dict[str, Schema] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    if properties:
        lines += [
            "| field | type | required | default | constraints | description |",
            "|---|---|---|---|---|---|",
        ]
        for field, sub in properties.items():
            limits = constraints(sub, EXTRA_KEYWORDS.get((name, field)))
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"`{field}`",
                        type_name(sub),
                        "yes" if field in required else "",
                        _default(sub),
                        _cell("; ".join(limits)),
                        _cell(_description(sub, defs)),
                    ]
                )
                + " |"
            )
        lines.append("")
    cel = CEL_RULES.get(name) or []
    if cel:
        lines += [
            "Rules (checked by `fusioninfer validate` and the controller; CEL in the CRD on Kubernetes >= 1.25):",
            "",
        ]
        lines += [f"- {rule['message']}" for rule in cel]
        lines.append("")
    return lines


def reference_markdown() -> str:
    """The complete `docs/api-reference.md`."""
    root = InferenceService.model_json_schema(by_alias=True)
    lines = [
        f"<!-- Generated from src/fusioninfer/api/v1alpha1.py by `{REGENERATE}`. Do not edit. -->",
        "",
        "# API reference",
        "",
        f"`{API_VERSION}`, kind `{KIND}` (resource `{PLURAL}`, short name "
        + ", ".join(f"`{s}`" for s in SHORT_NAMES)
        + "). Fields are listed by their YAML name. An empty default means the field is unset "
        "unless given; defaults that depend on other fields are explained in the description.",
        "",
        "`kubectl get fisvc` columns: "
        + ", ".join(f"{c['name']} (`{c['jsonPath']}`)" for c in PRINTER_COLUMNS if not c.get("priority"))
        + "; with `-o wide` also "
        + ", ".join(f"{c['name']} (`{c['jsonPath']}`)" for c in PRINTER_COLUMNS if c.get("priority"))
        + ".",
        "",
        "## Types",
        "",
    ]
    for name, schema in ordered_definitions(root):
        if "enum" in schema:
            lines += _enum_section(name, schema)
        else:
            lines += _struct_section(name, schema, root.get("$defs") or {})
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(reference_markdown())


if __name__ == "__main__":
    main()
