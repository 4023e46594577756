"""Every rule the README says the CRD's CEL enforces is enforced by the real apiserver.

Each bad spec is sent to the session's kube-apiserver (v1.33, our generated CRD installed) as a
server-side dry-run create: CEL must refuse it with the rule's message, at admission, before any
controller sees it; `fusioninfer validate` (the same rules in Python) must refuse it too. A
good spec passes both, so a rule that refused everything would show.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse

pytestmark = pytest.mark.integration

ISVC = create_namespaced_resource("fusioninfer.io", "v1alpha1", "InferenceService", "inferenceservices")
TEMPLATE = {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}
ROUTER = {"name": "router", "componentType": "router", "httproute": {"parentRefs": [{"name": "gw"}]}}


def role(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "componentType": kind, "template": copy.deepcopy(TEMPLATE), **extra}


def service(*roles: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc"},
        "spec": {"roles": list(roles)},
    }


# README "The API in brief": "checked by `fusioninfer validate`, by the controller, and as CEL rules".
CEL_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "monolithic-with-a-prefiller": (
        service(role("w", "worker"), role("p", "prefiller"), role("d", "decoder")),
        "exactly one worker role (monolithic) or at least one prefiller and one decoder",
    ),
    "two-workers": (service(role("a", "worker"), role("b", "worker")), "exactly one worker role"),
    "prefiller-without-decoder": (service(role("p", "prefiller")), "at least one prefiller and one decoder"),
    "two-routers": (
        service(ROUTER, {**ROUTER, "name": "router2"}, role("w", "worker")),
        "at most one router role",
    ),
    "router-field-on-a-worker": (service(role("w", "worker", strategy="queue-size")), "router-only"),
    "serving-field-on-the-router": (
        service({**ROUTER, "multinode": {"nodeCount": 2}}, role("w", "worker")),
        "not allowed on a router role",
    ),
    "pd-strategy-on-a-monolithic-service": (
        service({**ROUTER, "strategy": "pd-disaggregation"}, role("w", "worker")),
        "strategy pd-disaggregation requires prefiller and decoder roles",
    ),
    "serving-role-without-template": (
        service({"name": "w", "componentType": "worker"}),
        "a serving role needs a pod template or a model",
    ),
    "duplicate-role-names": (service(role("w", "worker"), role("w", "worker")), "role names must be unique"),
    "replicas-and-its-alias": (
        service(role("w", "worker", replicas=1, roleReplicas=1)),
        "roleReplicas is a deprecated alias of replicas",
    ),
    "node-count-and-its-alias": (
        service(role("w", "worker", multinode={"nodeCount": 2}, podReplicas=2)),
        "podReplicas is a deprecated alias of multinode.nodeCount",
    ),
}


def dry_run(client: Client, doc: dict[str, Any], namespace: str) -> None:
    obj = ISVC({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})
    client.create(obj, namespace=namespace, dry_run=True)


@pytest.mark.parametrize("case", sorted(CEL_RULES))
def test_cel_refuses_what_the_readme_says_it_refuses(case: str, client: Client, namespace: str) -> None:
    doc, message = CEL_RULES[case]
    with pytest.raises(ApiError) as refused:
        dry_run(client, doc, namespace)
    assert refused.value.status.code == 422, refused.value.status
    assert message in str(refused.value.status.message)
    with pytest.raises(InvalidSpec):
        parse(doc)


def test_a_good_spec_passes_cel_and_validation(client: Client, namespace: str) -> None:
    doc = service(ROUTER, role("p", "prefiller"), role("d", "decoder"))
    dry_run(client, doc, namespace)
    parse(doc)


# README: "checked by `fusioninfer validate` and the controller only (not CEL)".
CONTROLLER_ONLY: dict[str, dict[str, Any]] = {
    "template-without-containers": service(
        {"name": "w", "componentType": "worker", "template": {"spec": {"containers": []}}}
    ),
    "generated-name-too-long": service(role("w" * 60, "worker")),
}


@pytest.mark.parametrize("case", sorted(CONTROLLER_ONLY))
def test_what_the_readme_says_only_the_controller_checks_passes_cel(case: str, client: Client, namespace: str) -> None:
    """The README must not promise admission-time refusal for these: the apiserver takes them,
    validation (and so the controller's Valid=False) refuses them."""
    doc = CONTROLLER_ONLY[case]
    if case == "generated-name-too-long":
        doc = {**doc, "metadata": {"name": "s" * 40}}
    dry_run(client, doc, namespace)
    with pytest.raises(InvalidSpec):
        parse(doc)
