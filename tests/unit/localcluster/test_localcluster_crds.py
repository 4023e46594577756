"""Unit tests of the bundled minimal third-party CRDs: present, structural, loadable on 1.20,
and shaped like upstream where it matters (scope, versions, subresources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fusioninfer.localcluster.crds import (
    BUNDLED_CRD_DIR,
    crd_files,
    crd_names,
    is_established,
    load_crds,
    served_versions,
)

EXPECTED = {
    # name: (version, scope, status subresource, scale subresource)
    "leaderworkersets.leaderworkerset.x-k8s.io": ("v1", "Namespaced", True, True),
    "podgroups.scheduling.volcano.sh": ("v1beta1", "Namespaced", False, False),
    "queues.scheduling.volcano.sh": ("v1beta1", "Cluster", True, False),
    "inferencepools.inference.networking.k8s.io": ("v1", "Namespaced", True, False),
    "inferenceobjectives.inference.networking.x-k8s.io": ("v1alpha2", "Namespaced", True, False),
    "httproutes.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "gateways.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "gatewayclasses.gateway.networking.k8s.io": ("v1", "Cluster", True, False),
}


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in load_crds(BUNDLED_CRD_DIR)}


def test_every_third_party_kind_we_create_has_a_bundled_crd(crds: dict[str, dict[str, Any]]) -> None:
    assert set(crds) == set(EXPECTED)
    assert sorted(crd_names(BUNDLED_CRD_DIR)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crd_shape_matches_upstream(crds: dict[str, dict[str, Any]], name: str) -> None:
    version, scope, has_status, has_scale = EXPECTED[name]
    crd = crds[name]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert f"{spec['names']['plural']}.{spec['group']}" == name
    assert spec["scope"] == scope
    (ver,) = spec["versions"]
    assert ver["name"] == version
    assert ver["served"] is True
    assert ver["storage"] is True
    sub = ver.get("subresources") or {}
    assert ("status" in sub) == has_status
    assert ("scale" in sub) == has_scale
    if spec["group"].endswith(".k8s.io") and not spec["group"].endswith(".x-k8s.io"):
        assert "api-approved.kubernetes.io" in crd["metadata"]["annotations"], "1.20 rejects it otherwise"


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    """Structural-schema violations below `schema` (the subset of the rules that bites in practice):
    every node has a type unless it is int-or-string or preserves unknown fields; no CEL; no
    `default: ""` (1.20 rejects both)."""
    problems: list[str] = []
    if "x-kubernetes-validations" in schema:
        problems.append(f"{path}: CEL is not supported by 1.20")
    if schema.get("default") == "":
        problems.append(f'{path}: default "" is rejected by 1.20')
    typed = (
        "type" in schema
        or schema.get("x-kubernetes-int-or-string")
        or (schema.get("x-kubernetes-preserve-unknown-fields") and "type" in schema)
    )
    if not typed:
        problems.append(f"{path}: no type")
    for key, sub in (schema.get("properties") or {}).items():
        problems += _walk(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        problems += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _walk(schema["additionalProperties"], f"{path}{{}}")
    if schema.get("x-kubernetes-list-type") == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        required = set((schema.get("items") or {}).get("required") or [])
        if not set(keys) <= required:
            problems.append(f"{path}: list-map keys {keys} must be required (server-side apply)")
    return problems


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schemas_are_structural_and_1_20_compatible(crds: dict[str, dict[str, Any]], name: str) -> None:
    schema = crds[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema, name) == []
    assert set(schema["properties"]) >= {"apiVersion", "kind", "metadata", "spec"}
    spec = schema["properties"]["spec"]
    assert spec.get("properties"), "top-level spec fields must be typed, not preserved wholesale"
    assert not spec.get("x-kubernetes-preserve-unknown-fields"), "a misspelt top-level field must be pruned"


def test_fields_fusioninfer_sets_are_typed(crds: dict[str, dict[str, Any]]) -> None:
    def props(name: str, *path: str) -> set[str]:
        node = crds[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for step in path:
            node = node["items"] if step == "[]" else node["properties"][step]
        return set(node["properties"])

    lws = "leaderworkersets.leaderworkerset.x-k8s.io"
    assert {"replicas", "leaderWorkerTemplate", "startupPolicy", "rolloutStrategy"} <= props(lws, "spec")
    assert {"size", "leaderTemplate", "workerTemplate", "restartPolicy"} <= props(lws, "spec", "leaderWorkerTemplate")
    assert {"readyReplicas", "replicas", "conditions"} <= props(lws, "status")
    assert {"minMember", "minResources", "queue", "priorityClassName", "minTaskMember"} <= props(
        "podgroups.scheduling.volcano.sh", "spec"
    )
    pool = "inferencepools.inference.networking.k8s.io"
    assert {"selector", "targetPorts", "endpointPickerRef"} <= props(pool, "spec")
    assert {"name", "port", "failureMode", "kind", "group"} <= props(pool, "spec", "endpointPickerRef")
    route = "httproutes.gateway.networking.k8s.io"
    assert {"parentRefs", "rules", "hostnames"} <= props(route, "spec")
    assert {"matches", "backendRefs", "filters", "timeouts"} <= props(route, "spec", "rules", "[]")
    assert {"group", "kind", "name", "port", "weight"} <= props(route, "spec", "rules", "[]", "backendRefs", "[]")
    assert {"poolRef", "priority"} <= props("inferenceobjectives.inference.networking.x-k8s.io", "spec")


def test_crd_files_accepts_files_and_directories(tmp_path: Path) -> None:
    one = BUNDLED_CRD_DIR / "scheduling.volcano.sh_queues.yaml"
    assert crd_files(one) == [one]
    assert len(crd_files(BUNDLED_CRD_DIR)) == len(EXPECTED)
    (tmp_path / "mixed.yaml").write_text("kind: ConfigMap\n---\n" + one.read_text())
    assert [c["metadata"]["name"] for c in load_crds(tmp_path)] == ["queues.scheduling.volcano.sh"]
    with pytest.raises(FileNotFoundError):
        crd_files(tmp_path / "missing")


def test_served_versions_feed_lightkube_generic_resources(crds: dict[str, dict[str, Any]]) -> None:
    table = {(g, v, k): (plural, namespaced) for g, v, k, plural, namespaced in served_versions(crds.values())}
    assert table[("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet")] == ("leaderworkersets", True)
    assert table[("scheduling.volcano.sh", "v1beta1", "Queue")] == ("queues", False)


def test_is_established_needs_both_conditions() -> None:
    def crd(*true: str) -> dict[str, Any]:
        types = ("Established", "NamesAccepted")
        return {"status": {"conditions": [{"type": t, "status": "True" if t in true else "False"} for t in types]}}

    assert is_established(crd("Established", "NamesAccepted"))
    assert not is_established(crd("Established"))
    assert not is_established({"status": None})
    assert not is_established({})
