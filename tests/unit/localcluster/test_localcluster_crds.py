"""Unit tests of the bundled third-party CRDs: the upstream files unmodified (checksums, CEL rules
present), every kind FusionInfer creates covered, and the fields it sets declared."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from fusioninfer_dev.localcluster.crds import (
    BUNDLED_CRD_DIR,
    crd_files,
    crd_names,
    is_established,
    load_crds,
    served_versions,
)

EXPECTED = {
    # name: (storage version, scope, status subresource, scale subresource)
    "leaderworkersets.leaderworkerset.x-k8s.io": ("v1", "Namespaced", True, True),
    "podgroups.scheduling.volcano.sh": ("v1beta1", "Namespaced", False, False),
    "queues.scheduling.volcano.sh": ("v1beta1", "Cluster", True, False),
    "inferencepools.inference.networking.k8s.io": ("v1", "Namespaced", True, False),
    "inferencepools.inference.networking.x-k8s.io": ("v1alpha2", "Namespaced", True, False),
    "inferenceobjectives.inference.networking.x-k8s.io": ("v1alpha2", "Namespaced", True, False),
    "inferencemodelrewrites.inference.networking.x-k8s.io": ("v1alpha2", "Namespaced", True, False),
    "inferencepoolimports.inference.networking.x-k8s.io": ("v1alpha1", "Namespaced", True, False),
    "httproutes.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "grpcroutes.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "gateways.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "gatewayclasses.gateway.networking.k8s.io": ("v1", "Cluster", True, False),
    "referencegrants.gateway.networking.k8s.io": ("v1beta1", "Namespaced", False, False),
    "backendtlspolicies.gateway.networking.k8s.io": ("v1", "Namespaced", True, False),
    "scaledobjects.keda.sh": ("v1alpha1", "Namespaced", True, False),
}


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in load_crds(BUNDLED_CRD_DIR)}


def test_every_third_party_kind_we_create_has_a_bundled_crd(crds: dict[str, dict[str, Any]]) -> None:
    assert set(crds) == set(EXPECTED)
    assert sorted(crd_names(BUNDLED_CRD_DIR)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crd_shape(crds: dict[str, dict[str, Any]], name: str) -> None:
    version, scope, has_status, has_scale = EXPECTED[name]
    crd = crds[name]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert f"{spec['names']['plural']}.{spec['group']}" == name
    assert spec["scope"] == scope
    (storage,) = [v for v in spec["versions"] if v["storage"]]
    assert storage["name"] == version
    sub = storage.get("subresources") or {}
    assert ("status" in sub) == has_status
    assert ("scale" in sub) == has_scale


def test_files_are_the_published_ones_byte_for_byte() -> None:
    """SHA256SUMS pins every file: a "sanitized" copy (CEL stripped, defaults removed) fails here."""
    sums = (BUNDLED_CRD_DIR / "SHA256SUMS").read_text().split("\n")
    pinned = {line.split()[1]: line.split()[0] for line in sums if line.strip()}
    present = {str(p.relative_to(BUNDLED_CRD_DIR)) for p in crd_files(BUNDLED_CRD_DIR)}
    assert present == set(pinned)
    for rel, digest in pinned.items():
        assert hashlib.sha256((BUNDLED_CRD_DIR / rel).read_bytes()).hexdigest() == digest, rel
    for project in {p.split("/")[0] for p in pinned}:
        assert "Apache License" in (BUNDLED_CRD_DIR / project / "LICENSE").read_text(), project


def _count_cel(node: Any) -> int:
    if isinstance(node, dict):
        return len(node.get("x-kubernetes-validations") or []) + sum(_count_cel(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_cel(v) for v in node)
    return 0


def test_cel_rules_are_kept(crds: dict[str, dict[str, Any]]) -> None:
    """The rules a real cluster enforces are there (the old 1.20 copies had 60+ removed)."""
    assert _count_cel(crds["httproutes.gateway.networking.k8s.io"]) > 20
    assert _count_cel(crds["inferencepools.inference.networking.k8s.io"]) > 0
    assert _count_cel(list(crds.values())) > 60


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
    one = BUNDLED_CRD_DIR / "volcano-v1.13.1" / "scheduling.volcano.sh_queues.yaml"
    assert crd_files(one) == [one]
    assert len(crd_files(BUNDLED_CRD_DIR)) == len(EXPECTED), "directories are read recursively"
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
