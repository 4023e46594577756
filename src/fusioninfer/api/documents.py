"""Reading InferenceServices from YAML text: several documents per file, errors per document.

A person running `fusioninfer validate -f x.yaml` wants every error of every document at once,
each with the document it came from, never a traceback.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import yaml

from fusioninfer.api.errors import FieldError, InvalidSpec, quote
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import NESTED_TOO_DEEPLY, parse
from fusioninfer.kube.yaml import load_all


@dataclass
class Document:
    """One YAML document of a file: the parsed service, or why it is not one."""

    source: str
    index: int
    service: InferenceService | None = None
    errors: list[FieldError] = field(default_factory=list)
    # metadata.name as written, so an invalid document can still be named in messages.
    raw_name: str | None = None

    @property
    def label(self) -> str:
        name = self.service.name if self.service else self.raw_name
        where = f"{self.source} (document {self.index + 1})"
        return f"{where} {name}" if name else where


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            # PyYAML's own check comes later, in construct_mapping; `key in seen` would raise
            # TypeError first. Same error, same words as PyYAML's.
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {quote(key)}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(text: str, source: str = "<stdin>") -> list[Document]:
    """Parse every non-empty YAML document of `text` into a Document."""
    try:
        raw = load_all(text, loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        return [Document(source, 0, errors=[FieldError("", f"malformed YAML: {_yaml_reason(exc)}")])]
    except RecursionError:
        # PyYAML's parser recurses once per nesting level; a few KB of `[[[[...` exhaust the
        # stack. No InferenceService is nested that deep.
        return [Document(source, 0, errors=[FieldError("", f"malformed YAML: {NESTED_TOO_DEEPLY}")])]
    documents = []
    for index, obj in enumerate(raw):
        doc = Document(source, index, raw_name=_raw_name(obj))
        try:
            doc.service = parse(obj)
        except InvalidSpec as exc:
            doc.errors = exc.errors
        documents.append(doc)
    if not documents:
        documents.append(Document(source, 0, errors=[FieldError("", "no InferenceService found (empty input)")]))
    return documents


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)


def _raw_name(obj: object) -> str | None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else None
