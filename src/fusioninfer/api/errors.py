"""Field errors in the Kubernetes style: `spec.roles[2].multinode.nodeCount: must be >= 1`.

Every way an InferenceService can be wrong (malformed YAML, a wrong type, an unknown field,
a broken topology rule) ends up as a list of `FieldError`s, so the CLI, the status condition
and the Event all say the same thing with the exact path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True, order=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidSpec(Exception):
    """Raised when a document is not a valid InferenceService; carries every error found."""

    def __init__(self, errors: Sequence[FieldError]):
        self.errors: list[FieldError] = sorted(set(errors), key=_error_sort_key)
        super().__init__("; ".join(str(e) for e in self.errors))


def _error_sort_key(err: FieldError) -> tuple[list[Any], str]:
    parts: list[Any] = []
    for token in re.split(r"[.\[\]]+", err.path):
        if token:
            parts.append((0, int(token), "") if token.isdigit() else (1, 0, token))
    return parts, err.message


def join_path(loc: Iterable[str | int]) -> str:
    """('spec', 'roles', 2, 'name') -> 'spec.roles[2].name'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = part
    return out


# Union/validator tags pydantic inserts into `loc`; they are not fields.
_TAG = re.compile(r"^(int|str|float|bool|none|dict\[.*\]|list\[.*\]|constrained-\w+|function-\w+\[.*\]|[\w-]+\[.*\])$")


def _quote(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):  # pragma: no cover - json.dumps with default=str rarely fails
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    simple = {
        "missing": "Required value",
        "extra_forbidden": "unknown field",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "string_type": "must be a string",
        "bool_type": "must be a boolean",
        "bool_parsing": "must be a boolean",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
        "list_type": "must be a list",
    }
    if kind in simple:
        base = simple[kind]
        if kind in ("missing", "extra_forbidden"):
            return base
        return f"Invalid value: {_quote(value)}: {base}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"Invalid value: {_quote(value)}: must be {op} {bound}"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "Required value: must not be empty"
        return f"Invalid value: {_quote(value)}: must have at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"Too long: may not be more than {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"Required value: must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"Too many: {ctx.get('actual_length')}: must have at most {ctx.get('max_length')} items"
    if kind == "string_pattern_mismatch":
        return f"Invalid value: {_quote(value)}: must match the regex {ctx.get('pattern')}"
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        supported = ", ".join(f'"{c}"' for c in choices)
        return f"Unsupported value: {_quote(value)}: supported values: {supported}"
    return f"Invalid value: {_quote(value)}: {err['msg']}"


def from_pydantic(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Translate pydantic's errors into field errors with Kubernetes-style paths and messages."""
    result: dict[str, FieldError] = {}
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and _TAG.match(p))]
        path = join_path([*prefix, *loc])
        # A union reports once per member; one message per path is enough for a person.
        result.setdefault(path, FieldError(path, _message(err)))
    return list(result.values())
