"""Every rule the README says the CRD's CEL enforces is enforced by the real apiserver.

Each bad spec is sent to the session's kube-apiserver (v1.33, our generated CRD installed) as a
server-side dry-run create: CEL must refuse it with the rule's message, at admission, before any
controller sees it; `fusioninfer validate` (the same rules in Python) must refuse it too. A
good spec passes both, so a rule that refused everything would show.
"""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.generic_resource import create_namespaced_resource
from tests.support.wrappers import InferenceServiceWrapper, router_role

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse

pytestmark = pytest.mark.integration

ISVC = create_namespaced_resource("fusioninfer.io", "v1alpha1", "InferenceService", "inferenceservices")
# README "The API in brief": "checked by `fusioninfer validate`, by the controller, and as CEL rules".
CEL_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "monolithic-with-a-prefiller": (
        InferenceServiceWrapper().worker("w").prefiller("p").decoder("d").obj(),
        "exactly one worker role (monolithic) or at least one prefiller and one decoder",
    ),
    "two-workers": (InferenceServiceWrapper().worker("a").worker("b").obj(), "exactly one worker role"),
    "prefiller-without-decoder": (
        InferenceServiceWrapper().prefiller("p").obj(),
        "at least one prefiller and one decoder",
    ),
    "two-routers": (
        InferenceServiceWrapper().router().role(router_role(name="router2")).worker("w").obj(),
        "at most one router role",
    ),
    "router-field-on-a-worker": (InferenceServiceWrapper().worker("w", strategy="queue-size").obj(), "router-only"),
    "serving-field-on-the-router": (
        InferenceServiceWrapper().router(multinode={"nodeCount": 2}).worker("w").obj(),
        "not allowed on a router role",
    ),
    "pd-strategy-on-a-monolithic-service": (
        InferenceServiceWrapper().router("pd-disaggregation").worker("w").obj(),
        "strategy pd-disaggregation requires prefiller and decoder roles",
    ),
    "serving-role-without-template": (
        InferenceServiceWrapper().role({"name": "w", "componentType": "worker"}).obj(),
        "a serving role needs a pod template or a model",
    ),
    "duplicate-role-names": (InferenceServiceWrapper().worker("w").worker("w").obj(), "role names must be unique"),
    "replicas-and-its-alias": (
        InferenceServiceWrapper().worker("w", replicas=1, roleReplicas=1).obj(),
        "roleReplicas is a deprecated alias of replicas",
    ),
    "node-count-and-its-alias": (
        InferenceServiceWrapper().worker("w", multinode={"nodeCount": 2}, podReplicas=2).obj(),
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
    doc = InferenceServiceWrapper().router().prefiller("p").decoder("d").obj()
    dry_run(client, doc, namespace)
    parse(doc)


# README: "checked by `fusioninfer validate` and the controller only (not CEL)".
CONTROLLER_ONLY: dict[str, dict[str, Any]] = {
    "template-without-containers": InferenceServiceWrapper().worker("w", template={"spec": {"containers": []}}).obj(),
    "generated-name-too-long": InferenceServiceWrapper().worker("w" * 60).obj(),
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
