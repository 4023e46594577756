"""The label and annotation keys are API: their spelled-out values, and that they have one home."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fusioninfer.api import labels

SRC = Path(__file__).resolve().parents[3] / "src" / "fusioninfer"
# `fusioninfer.io/...` strings that are not label or annotation keys.
NOT_KEYS = {"fusioninfer.io/v1alpha1", "fusioninfer.io/local-gateway"}


def test_the_keys_users_see() -> None:
    assert labels.LABEL_MANAGED_BY == "app.kubernetes.io/managed-by"
    assert labels.MANAGED_BY == "fusioninfer"
    assert labels.LABEL_INSTANCE == "app.kubernetes.io/instance"
    assert labels.LABEL_COMPONENT == "app.kubernetes.io/component"
    assert labels.LABEL_SERVICE == "fusioninfer.io/service"
    assert labels.LABEL_ROLE_NAME == "fusioninfer.io/role-name"
    assert labels.LABEL_COMPONENT_TYPE == "fusioninfer.io/component-type"
    assert (labels.LABEL_SERVING, labels.SERVING_VALUE) == ("fusioninfer.io/serving", "true")
    assert labels.ANNOTATION_EPP_CONFIG_HASH == "fusioninfer.io/epp-config-hash"
    assert labels.ANNOTATION_APPLIED_HASH == "fusioninfer.io/applied-hash"


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        ("fusioninfer.io/anything", True),
        ("app.kubernetes.io/managed-by", True),
        ("app.kubernetes.io/instance", True),
        ("app.kubernetes.io/component", True),
        ("app.kubernetes.io/name", False),
        ("llm-d.ai/role", False),
        ("team", False),
    ],
)
def test_reserved_keys(key: str, reserved: bool) -> None:
    assert labels.is_reserved(key) is reserved


def spelled_keys(src: Path) -> list[str]:
    """Every `fusioninfer.io/...` string literal (not a docstring) outside `api/labels.py`."""
    home = src / "api" / "labels.py"
    found: list[str] = []
    for path in sorted(src.rglob("*.py")):
        if path == home:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and id(node) not in docstrings
                and isinstance(node.value, str)
                and node.value.startswith(labels.RESERVED_PREFIX)
                and node.value not in NOT_KEYS
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}: {node.value!r}")
    return found


def test_no_other_module_spells_one_of_our_keys() -> None:
    assert spelled_keys(SRC) == []
