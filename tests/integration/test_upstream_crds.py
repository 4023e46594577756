"""Conformance against the real third-party CRDs, with their CEL rules, on the session's cluster.

The session cluster installs the upstream CRDs byte for byte (LeaderWorkerSet, Volcano, Gateway
API, Inference Extension; `fusioninfer_dev.localcluster.crds`). Everything FusionInfer renders for
every example and every golden router spec is server-side applied here the way the operator
applies it (its own client: strict field validation), so a misspelt or misplaced field, or a
shape a CEL rule forbids, fails the build. The route shapes users write (timeouts, filters,
matches, several rules) are checked with server-side dry runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.documents import load_documents
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.kube.yaml import load_all
from fusioninfer.runtime.apply import apply
from fusioninfer.runtime.client import async_client
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR, is_established, load_crds

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
GOLDEN = sorted((REPO_ROOT / "tests" / "unit" / "builders" / "golden" / "router").glob("*.yaml"))
# Read at collection time: the tests are async, and file reads do not belong in an event loop.
EXAMPLE_TEXT = {p.name: p.read_text(encoding="utf-8") for p in EXAMPLES}
GOLDEN_OBJECTS = {p.name: yaml.safe_load(p.read_text(encoding="utf-8"))["objects"] for p in GOLDEN}
FIELD_MANAGER = "fusioninfer"  # what the operator applies with
OPTIONS = BuildOptions(capabilities=Capabilities(server_version=(1, 33)))


@pytest.fixture
async def operator_client(cluster: LocalCluster) -> AsyncIterator[AsyncClient]:
    """The client the operator itself uses (`fusioninfer run`): strict field validation."""
    client = async_client(KubeConfig.from_file(cluster.kubeconfig_path), field_manager=FIELD_MANAGER)
    try:
        yield client
    finally:
        await client.close()


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}


def rendered(name: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for doc in load_documents(EXAMPLE_TEXT[name], name):
        assert not doc.errors, f"{name}: example is invalid: {doc.errors}"
        assert doc.service is not None
        objects.extend(build(doc.service, OPTIONS).objects)
    return objects


def test_every_bundled_crd_is_established_and_served(client: Client) -> None:
    crds = load_crds(BUNDLED_CRD_DIR)
    assert len(crds) >= 14
    for crd in crds:
        name = crd["metadata"]["name"]
        assert is_established(client.get(CustomResourceDefinition, name)), name
        live = client.get(CustomResourceDefinition, name)
        # Stored as published: the CEL rules are in the live object too.
        assert yaml.safe_dump(live.spec.to_dict()["versions"][0]["schema"]).count("x-kubernetes-validations") == (
            yaml.safe_dump(crd["spec"]["versions"][0]["schema"]).count("x-kubernetes-validations")
        ), name


async def test_strict_field_validation_names_a_misspelt_field(operator_client: AsyncClient, namespace: str) -> None:
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "typo", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": 2,
                "sizee": 3,
                "workerTemplate": {"spec": {"containers": [{"name": "w", "image": "vllm/vllm-openai:v0.11.0"}]}},
            },
        },
    }
    with pytest.raises(ApiError) as rejected:
        await apply(operator_client, lws, FIELD_MANAGER)
    assert ".spec.leaderWorkerTemplate.sizee" in str(rejected.value.status.message)
    del lws["spec"]["leaderWorkerTemplate"]["sizee"]
    stored = await apply(operator_client, lws, FIELD_MANAGER)
    assert stored["spec"]["leaderWorkerTemplate"]["restartPolicy"] == "RecreateGroupOnPodRestart"  # upstream default


async def test_cel_rules_of_the_upstream_crds_are_enforced(operator_client: AsyncClient, namespace: str) -> None:
    """What the old 1.20 server let through: a backendRequest timeout longer than the request one."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "too-long", "namespace": namespace},
        "spec": {"rules": [{"timeouts": {"request": "10s", "backendRequest": "20s"}}]},
    }
    with pytest.raises(ApiError) as rejected:
        await apply(operator_client, route, FIELD_MANAGER, dry_run=True)
    assert "backendRequest timeout cannot be longer than request timeout" in str(rejected.value.status.message)


@pytest.mark.parametrize("example", sorted(EXAMPLE_TEXT))
async def test_rendered_example_is_accepted(operator_client: AsyncClient, namespace: str, example: str) -> None:
    for obj in rendered(example):
        await apply(operator_client, in_namespace(obj, namespace), FIELD_MANAGER)


@pytest.mark.parametrize("golden", sorted(GOLDEN_OBJECTS))
async def test_golden_router_objects_are_accepted(operator_client: AsyncClient, namespace: str, golden: str) -> None:
    objects = GOLDEN_OBJECTS[golden]
    assert objects
    for obj in objects:
        await apply(operator_client, in_namespace(obj, namespace), FIELD_MANAGER)


@pytest.mark.parametrize("example", sorted(EXAMPLE_TEXT))
async def test_example_is_accepted_by_our_crd(operator_client: AsyncClient, namespace: str, example: str) -> None:
    """The examples apply to our CRD (with its CEL rules) as written, strict validation on."""
    for doc in load_all(EXAMPLE_TEXT[example]):
        if doc:
            await apply(operator_client, in_namespace(doc, namespace), "fusioninfer-tests")


# Route shapes users write in `httproute`, each as the builder completes it.
ROUTE_SHAPES: dict[str, dict[str, Any]] = {
    "request-timeout": {"rules": [{"timeouts": {"request": "600s"}}]},
    "backend-request-only": {"rules": [{"timeouts": {"backendRequest": "900s"}}]},
    "both-timeouts": {"rules": [{"timeouts": {"request": "1h", "backendRequest": "59m"}}]},
    "no-timeout": {"rules": [{"timeouts": {"request": "0s", "backendRequest": "10m"}}]},
    "header-modifier": {
        "rules": [
            {
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-team", "value": "ml"}], "remove": ["x-debug"]},
                    }
                ]
            }
        ]
    },
    "url-rewrite": {
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/qwen"}}],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
                    }
                ],
            }
        ]
    },
    "redirect-beside-a-serving-rule": {
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {
                            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v1"},
                            "statusCode": 302,
                        },
                    }
                ],
            },
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}]},
        ]
    },
    "matches": {
        "rules": [
            {
                "matches": [
                    {"path": {"type": "Exact", "value": "/v1/chat/completions"}, "method": "POST"},
                    {"headers": [{"name": "x-model", "value": "qwen"}]},
                    {"queryParams": [{"type": "Exact", "name": "stream", "value": "true"}]},
                    {"path": {"type": "RegularExpression", "value": "^/v1/.*"}},
                ]
            }
        ]
    },
    "several-named-rules-and-hostnames": {
        "hostnames": ["llm.example.com", "*.llm.example.com"],
        "rules": [
            {"name": "chat", "matches": [{"path": {"type": "PathPrefix", "value": "/v1/chat"}}]},
            {"name": "completions", "matches": [{"path": {"type": "PathPrefix", "value": "/v1/completions"}}]},
            {"name": "rest"},
        ],
    },
    "section-names": {
        "parentRefs": [{"name": "gw", "sectionName": "http"}, {"name": "gw", "sectionName": "https"}],
    },
}


@pytest.mark.parametrize("shape", sorted(ROUTE_SHAPES))
async def test_route_shapes_users_write_pass_the_gateway_api_rules(
    operator_client: AsyncClient, namespace: str, shape: str
) -> None:
    httproute = {"parentRefs": [{"name": "inference-gateway"}], **ROUTE_SHAPES[shape]}
    isvc = parse(
        InferenceServiceWrapper()
        .namespace(namespace)
        .router("prefix-cache", parent=None, httproute=httproute)
        .worker(args=None)
        .obj()
    )
    (route,) = [o for o in build(isvc, OPTIONS).objects if o["kind"] == "HTTPRoute"]
    await apply(operator_client, route, FIELD_MANAGER, dry_run=True)
