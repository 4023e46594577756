"""Reading InferenceServices from YAML text: several documents, errors per document, never a traceback."""

from __future__ import annotations

import textwrap

import pytest

from fusioninfer.api.documents import Document, load_documents
from fusioninfer.api.errors import FieldError

VALID = textwrap.dedent(
    """\
    apiVersion: fusioninfer.io/v1alpha1
    kind: InferenceService
    metadata:
      name: {name}
    spec:
      roles:
        - name: inference
          componentType: worker
          template:
            spec:
              containers:
                - name: vllm
                  image: vllm/vllm-openai:v0.11.0
    """
)


def valid(name: str = "svc") -> str:
    return VALID.format(name=name)


def messages(docs: list[Document]) -> list[list[str]]:
    return [[str(e) for e in d.errors] for d in docs]


def test_one_valid_document() -> None:
    (doc,) = load_documents(valid(), "svc.yaml")
    assert doc.errors == []
    assert doc.service is not None
    assert doc.service.name == "svc"
    assert (doc.source, doc.index) == ("svc.yaml", 0)
    assert doc.label == "svc.yaml (document 1) svc"


def test_several_documents_keep_their_order_and_index() -> None:
    text = valid("a") + "---\n" + valid("b") + "---\n" + valid("c")
    docs = load_documents(text, "x.yaml")
    assert [d.service.name if d.service else None for d in docs] == ["a", "b", "c"]
    assert [d.label for d in docs] == ["x.yaml (document 1) a", "x.yaml (document 2) b", "x.yaml (document 3) c"]


def test_empty_documents_between_separators_are_skipped() -> None:
    docs = load_documents("---\n---\n" + valid("a") + "---\n# comment\n---\n" + valid("b") + "---\n")
    assert [d.service.name if d.service else None for d in docs] == ["a", "b"]
    assert [d.index for d in docs] == [0, 1]


def test_an_invalid_document_does_not_hide_a_valid_one() -> None:
    broken = valid("b").replace("componentType: worker", "componentType: boss")
    docs = load_documents(valid("a") + "---\n" + broken, "x.yaml")
    assert docs[0].service is not None
    assert docs[0].errors == []
    assert docs[1].service is None
    assert messages(docs)[1] == [
        'spec.roles[0].componentType: Unsupported value: "boss": supported values: "worker", "prefiller", '
        '"decoder", "router"'
    ]
    # An invalid document is still named after metadata.name as written.
    assert docs[1].label == "x.yaml (document 2) b"


@pytest.mark.parametrize("text", ["", "\n", "# nothing here\n", "---\n", "---\n---\n...\n"])
def test_empty_input(text: str) -> None:
    docs = load_documents(text, "<stdin>")
    assert messages(docs) == [["no InferenceService found (empty input)"]]
    assert docs[0].label == "<stdin> (document 1)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: [1\n", "line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        ("a: b: c\n", "line 1, column 5: mapping values are not allowed here"),
        ("a:\n  - x\n - y\n", "line 3, column 2: expected <block end>, but found '<block sequence start>'"),
        ("a: 'unterminated\n", "line 2, column 1: found unexpected end of stream"),
        (
            "a: !!python/object:os.system {}\n",
            "line 1, column 4: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
    ids=["flow", "nested-mapping", "indent", "quote", "unsafe-tag"],
)
def test_malformed_yaml_is_one_clear_error(text: str, reason: str) -> None:
    (doc,) = load_documents(text, "bad.yaml")
    assert doc.service is None
    assert doc.errors == [FieldError("", f"malformed YAML: {reason}")]
    assert doc.label == "bad.yaml (document 1)"


def test_duplicate_keys_are_refused() -> None:
    text = valid().replace("kind: InferenceService\n", "kind: InferenceService\nkind: InferenceService\n")
    (doc,) = load_documents(text, "dup.yaml")
    assert messages([doc]) == [['malformed YAML: line 3, column 1: duplicate key "kind"']]


def test_nested_duplicate_keys_are_refused() -> None:
    text = valid().replace("  name: svc\n", "  name: svc\n  name: other\n")
    (doc,) = load_documents(text)
    assert messages([doc]) == [['malformed YAML: line 5, column 3: duplicate key "name"']]


def test_same_key_in_different_mappings_is_fine() -> None:
    # `name` appears in metadata, in the role and in the container.
    assert load_documents(valid())[0].errors == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int"), ("true\n", "bool")],
)
def test_non_mapping_documents(text: str, kind: str) -> None:
    (doc,) = load_documents(text, "x.yaml")
    assert messages([doc]) == [[f"an InferenceService must be a mapping, got {kind}"]]


def test_each_non_mapping_document_is_reported() -> None:
    docs = load_documents("- 1\n---\n" + valid() + "---\nfoo\n")
    assert messages(docs) == [
        ["an InferenceService must be a mapping, got list"],
        [],
        ["an InferenceService must be a mapping, got str"],
    ]


def test_raw_name_is_only_taken_from_a_string() -> None:
    (doc,) = load_documents("metadata:\n  name: [x]\n", "x.yaml")
    assert doc.raw_name is None
    assert doc.label == "x.yaml (document 1)"


def test_other_kinds_are_reported_not_ignored() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"
    (doc,) = load_documents(text, "x.yaml")
    assert messages([doc]) == [
        [
            'apiVersion: Unsupported value: "v1": expected "fusioninfer.io/v1alpha1"',
            'kind: Unsupported value: "ConfigMap": expected "InferenceService"',
        ]
    ]
    assert doc.label == "x.yaml (document 1) cm"


@pytest.mark.parametrize("text", ["? [a]\n: b\n", "{[a]: b}\n", "metadata: {? {x: 1} : y}\n"])
def test_unhashable_keys_are_malformed_yaml_not_a_crash(text: str) -> None:
    (doc,) = load_documents(text, "x.yaml")
    assert doc.errors
    assert doc.errors[0].message.startswith("malformed YAML: ")


def test_deeply_nested_yaml_is_an_error_not_a_crash() -> None:
    docs = load_documents("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")
    assert docs[0].errors
