"""Every example in `examples/` validates and renders, deterministically, into well-formed children."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fusioninfer.api.documents import Document, load_documents
from fusioninfer.api.naming import workload_name
from fusioninfer.builders import build
from fusioninfer.builders.kinds import sort_key
from fusioninfer.kube.yaml import load_all

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
IDS = [p.name for p in EXAMPLES]


def documents(path: Path) -> list[Document]:
    docs = load_documents(path.read_text(encoding="utf-8"), str(path))
    assert docs
    return docs


def test_the_seed_examples_are_all_there() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "monolithic.yaml",
        "pd-disaggregated.yaml",
        "multinode.yaml",
        "story1-monolithic-multinode.yaml",
        "story2-pd-volcano.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_validates(path: Path) -> None:
    for doc in documents(path):
        assert doc.errors == [], [str(e) for e in doc.errors]
        assert doc.service is not None


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_renders_every_serving_workload(path: Path) -> None:
    for doc in documents(path):
        assert doc.service is not None
        objects = build(doc.service).objects
        by_name = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for role in doc.service.serving_roles:
            kind = "LeaderWorkerSet" if role.is_multinode else "Deployment"
            assert (kind, workload_name(doc.service.name, role.name)) in by_name


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_children_are_well_formed(path: Path) -> None:
    for doc in documents(path):
        assert doc.service is not None
        objects = build(doc.service).objects
        assert objects
        keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects]
        assert len(keys) == len(set(keys)), "two children with the same kind and name"
        assert [sort_key(o) for o in objects] == sorted(sort_key(o) for o in objects)
        for obj in objects:
            meta = obj["metadata"]
            assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]), meta["name"]
            assert len(meta["name"]) <= 63
            assert meta["namespace"] == doc.service.namespace
            assert meta["labels"]["app.kubernetes.io/managed-by"] == "fusioninfer"
            assert meta["labels"]["fusioninfer.io/service"] == doc.service.name
            if obj["kind"] == "Deployment":
                selector = obj["spec"]["selector"]["matchLabels"]
                assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_rendering_is_deterministic(path: Path) -> None:
    first = [build(d.service).objects for d in documents(path) if d.service]
    second = [build(d.service).objects for d in documents(path) if d.service]
    assert first == second
    assert yaml.safe_dump_all(first, sort_keys=True) == yaml.safe_dump_all(second, sort_keys=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_round_trips_through_yaml(path: Path) -> None:
    # What render prints can be read back unchanged (no Python-only types in the manifests).
    for doc in documents(path):
        assert doc.service is not None
        objects = build(doc.service).objects
        assert list(load_all(yaml.safe_dump_all(objects, sort_keys=True))) == objects


def test_examples_only_reference_examples_that_exist() -> None:
    for path in EXAMPLES:
        for name in re.findall(r"\b([\w.-]+\.yaml)\b", path.read_text(encoding="utf-8")):
            assert (path.parent / name).exists(), f"{path.name} refers to {name}"
