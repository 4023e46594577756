"""The API reference: generated from the models, checked in, and listing every field and value."""

from __future__ import annotations

import inspect
import re
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel
from tests.support.generated import assert_up_to_date

from fusioninfer.api import v1alpha1
from fusioninfer.api.crd import CEL_RULES
from fusioninfer.api.reference import (
    EXTERNAL_TYPES,
    REFERENCE_PATH,
    REGENERATE,
    constraints,
    main,
    ordered_definitions,
    reference_markdown,
    type_name,
)

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / REFERENCE_PATH


def _models() -> list[type[BaseModel]]:
    return [
        obj
        for _, obj in inspect.getmembers(v1alpha1, inspect.isclass)
        if issubclass(obj, BaseModel) and obj.__module__ == v1alpha1.__name__ and not obj.__name__.startswith("_")
    ]


def _enums() -> list[type[Enum]]:
    return [
        obj
        for _, obj in inspect.getmembers(v1alpha1, inspect.isclass)
        if issubclass(obj, Enum) and obj.__module__ == v1alpha1.__name__
    ]


def _section(text: str, name: str) -> str:
    match = re.search(rf"^### {re.escape(name)}\n(.*?)(?=^### |\Z)", text, flags=re.M | re.S)
    assert match, f"no section for {name}"
    return match.group(1)


# --- the checked-in file is exactly what the models generate -------------------------------------
def test_checked_in_reference_is_up_to_date() -> None:
    assert REFERENCE_PATH.as_posix() == "docs/api-reference.md"
    current = CHECKED_IN.read_text(encoding="utf-8") if CHECKED_IN.exists() else ""
    assert_up_to_date("API reference", str(REFERENCE_PATH), current, reference_markdown(), REGENERATE)


def test_main_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    assert capsys.readouterr().out == reference_markdown()


def test_generation_is_deterministic() -> None:
    assert reference_markdown() == reference_markdown()


def test_says_it_is_generated_and_how() -> None:
    first = reference_markdown().splitlines()[0]
    assert "Do not edit" in first
    assert REGENERATE in first


# --- complete: every model, field (by its YAML name) and enum value ---------------------------------
def test_every_model_has_a_section_listing_each_field_by_alias() -> None:
    text = reference_markdown()
    for model in _models():
        if model.__name__ in EXTERNAL_TYPES:
            assert f"### {model.__name__}\n" not in text
            continue
        section = _section(text, model.__name__)
        for name, field in model.model_fields.items():
            wire = field.alias or name
            assert f"| `{wire}` |" in section, f"{model.__name__}.{name} missing as `{wire}`"


def test_snake_case_names_never_appear_as_fields() -> None:
    text = reference_markdown()
    assert re.findall(r"^\| `[a-z]+_[a-z_]+` \|", text, flags=re.M) == []


def test_every_enum_lists_all_its_values() -> None:
    text = reference_markdown()
    for enum in _enums():
        section = _section(text, enum.__name__)
        for member in enum:
            assert f"`{member.value}`" in section, f"{enum.__name__}.{member.name}"


def test_cel_rules_are_listed_under_their_model() -> None:
    text = reference_markdown()
    for model, rules in CEL_RULES.items():
        section = _section(text, model)
        for rule in rules:
            assert f"- {rule['message']}" in section


def test_sections_follow_the_fields_from_the_root() -> None:
    root = v1alpha1.InferenceService.model_json_schema(by_alias=True)
    names = [name for name, _ in ordered_definitions(root)]
    assert names[0] == "InferenceService"
    assert len(names) == len(set(names))
    # Depth-first: a struct's own types follow it before its siblings' types.
    assert names.index("InferenceServiceSpec") < names.index("Role") < names.index("Multinode")
    assert names.index("Multinode") < names.index("SchedulingStrategy") < names.index("InferenceServiceStatus")
    text = reference_markdown()
    assert [m for m in re.findall(r"^### (\S+)$", text, flags=re.M)] == names


def test_every_link_points_to_a_section_or_outside() -> None:
    text = reference_markdown()
    anchors = {f"#{name.lower()}" for name in re.findall(r"^### (\S+)$", text, flags=re.M)}
    links = re.findall(r"\[(\w+)\]\(([^)]+)\)", text)
    assert links
    for name, target in links:
        assert target in anchors or target.startswith("https://"), (name, target)


def test_table_rows_have_six_cells() -> None:
    for line in reference_markdown().splitlines():
        if line.startswith("| "):
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            assert len(cells) == 6, line


# --- rendering of types, defaults and constraints -----------------------------------------------------
def test_field_details() -> None:
    text = reference_markdown()
    multinode = _section(text, "Multinode")
    assert "| `nodeCount` | integer | yes |  | >= 1; <= 64 | Pods (nodes) per replica, leader included. |" in multinode
    toggle = _section(text, "ScorerToggle")
    assert "| `enabled` | boolean |  | `true` |" in toggle
    assert "| `weight` | number |  | `1` | > 0; <= 1000 |" in toggle
    role = _section(text, "Role")
    assert "| `componentType` | [ComponentType](#componenttype) | yes |" in role
    # The CRD-only DNS-1035 pattern of role names is shown too.
    assert "pattern `^[a-z]([-a-z0-9]*[a-z0-9])?$`" in role
    spec = _section(text, "InferenceServiceSpec")
    assert "| `roles` | [][Role](#role) | yes |  | items >= 1; items <= 16 |" in spec
    status = _section(text, "InferenceServiceStatus")
    assert "map[string][ComponentStatus](#componentstatus)" in status
    # A field without a description gets the docstring of the type it holds.
    assert "| `schedulingStrategy` | [SchedulingStrategy](#schedulingstrategy) |  |  |  | Pod-level scheduling" in spec


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}], "format": "date-time"}, "string (date-time)"),
        ({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+%$"}]}, "int-or-string"),
        ({"type": "array", "items": {"$ref": "#/$defs/Role"}}, "[][Role](#role)"),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "map[string]string"),
        ({"type": "object", "additionalProperties": True}, "object (free-form)"),
        ({"const": "InferenceService", "type": "string"}, '`"InferenceService"`'),
        ({"enum": ["True", "False"], "type": "string"}, "`True` \\| `False`"),
        ({"$ref": "#/$defs/ObjectMeta"}, f"[ObjectMeta]({EXTERNAL_TYPES['ObjectMeta'][0]})"),
        ({}, "any"),
    ],
)
def test_type_name(schema: dict[str, object], expected: str) -> None:
    assert type_name(schema) == expected


def test_constraints() -> None:
    assert constraints({"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "null"}]}) == [
        ">= 0",
        "<= 9",
    ]
    both = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+%$"}]}
    assert constraints(both) == ["integer: >= 0", "string: pattern `^[0-9]+%$`"]
    assert constraints({"type": "string"}, {"pattern": "^a$"}) == ["pattern `^a$`"]
    assert constraints({"type": "number", "exclusiveMinimum": 0}) == ["> 0"]
