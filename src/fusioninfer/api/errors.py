"""Field errors in the Kubernetes style: `spec.roles[2].multinode.nodeCount: must be >= 1`.

Every way an InferenceService can be wrong (malformed YAML, a wrong type, an unknown field,
a broken topology rule) ends up as a list of `FieldError`s, so the CLI, the status condition
and the Event all say the same thing with the exact path.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
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


def join_path(loc: Iterable[str | int], keys: frozenset[int] = frozenset()) -> str:
    """('spec', 'roles', 2, 'name') -> 'spec.roles[2].name'.

    Parts whose position is in `keys` are map keys and get brackets too, as the semantic rules
    write them (`labels[app.kubernetes.io/name]`): a key may contain dots, so `.key` would be
    ambiguous.
    """
    out = ""
    for position, part in enumerate(loc):
        if isinstance(part, int) or position in keys:
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = part
    return out


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types an annotation may hold: Annotated, Optional and unions flattened."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg) if t is not type(None)]
    return [annotation]


def _model_field(model: type[BaseModel], name: str) -> Any:
    """The annotation of the field `name` (its wire alias or Python name), or None."""
    for field_name, info in model.model_fields.items():
        if name in (info.alias, field_name):
            return info.annotation
    return None


# Union/validator tags pydantic inserts into `loc`; they are not fields.
_TAG = re.compile(r"^(int|str|float|bool|none|dict\[.*\]|list\[.*\]|constrained-\w+|function-\w+\[.*\]|[\w-]+\[.*\])$")


def clean_loc(model: type[BaseModel] | None, loc: Sequence[str | int]) -> tuple[list[str | int], frozenset[int]]:
    """pydantic's `loc` without union tags, and the positions in it that are map keys.

    `loc` tells neither a map key from a field name nor a union tag (`int`, `function-plain[...]`)
    from a key of that spelling, so this follows it through the model's annotations. Where the
    walk loses the type (Any, no model) a part that looks like a tag is one.
    """
    out: list[str | int] = []
    keys: set[int] = set()
    current: list[Any] = [model] if model is not None else []
    for part in loc:
        following: list[Any] = []
        is_key = False
        for candidate in current:
            origin = typing.get_origin(candidate)
            if isinstance(part, int):
                if origin is list:
                    following += _unwrap(typing.get_args(candidate)[0])
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                annotation = _model_field(candidate, part)
                if annotation is not None:
                    following += _unwrap(annotation)
            elif origin is dict:
                is_key = True
                following += _unwrap(typing.get_args(candidate)[1])
        ambiguous = len(current) != 1  # a union (tags name its members), or no type known
        if ambiguous and not following and not is_key and isinstance(part, str) and _TAG.match(part):
            continue  # a union member's tag: the value stays where it was
        if is_key:
            keys.add(len(out))
        out.append(part)
        current = following
    return out, frozenset(keys)


def quote(value: Any) -> str:
    """A user's value as Kubernetes prints it in a message: JSON (`"x"`, `5`, `null`), shortened.

    The one quoting style of every message, from pydantic's errors and from the semantic rules.
    """
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # mapping keys JSON cannot hold (e.g. tuples)
        text = repr(value)
    except RecursionError:  # absurd nesting; repr would recurse just as deep
        text = f"<deeply nested {type(value).__name__}>"
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
        return f"Invalid value: {quote(value)}: {base}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"Invalid value: {quote(value)}: must be {op} {bound}"
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return "Required value: must not be empty"
        return f"Invalid value: {quote(value)}: must have at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"Too long: may not be more than {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"Required value: must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"Too many: {ctx.get('actual_length')}: must have at most {ctx.get('max_length')} items"
    if kind == "string_pattern_mismatch":
        return f"Invalid value: {quote(value)}: must match the regex {ctx.get('pattern')}"
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        supported = ", ".join(f'"{c}"' for c in choices)
        return f"Unsupported value: {quote(value)}: supported values: {supported}"
    return f"Invalid value: {quote(value)}: {err['msg']}"


def from_pydantic(
    exc: ValidationError, prefix: Sequence[str | int] = (), model: type[BaseModel] | None = None
) -> list[FieldError]:
    """Translate pydantic's errors into field errors with Kubernetes-style paths and messages.

    `model` is the model that was validated; with it, map keys in a path get brackets.
    """
    result: dict[str, FieldError] = {}
    for err in exc.errors(include_url=False):
        loc, keys = clean_loc(model, err["loc"])
        path = join_path([*prefix, *loc], frozenset(len(prefix) + k for k in keys))
        # A union reports once per member; one message per path is enough for a person.
        result.setdefault(path, FieldError(path, _message(err)))
    return list(result.values())
