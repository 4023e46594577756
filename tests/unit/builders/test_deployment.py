"""The Deployment of a single-node serving role, through `build()` as render and the controller use it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, build
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.deployment import build_deployment
from fusioninfer.builders.workload import rolling_update


def deployments(service: InferenceService, options: BuildOptions | None = None) -> dict[str, Manifest]:
    """Deployments of serving roles, by role name (the endpoint picker has its own Deployment)."""
    out: dict[str, Manifest] = {}
    for obj in build(service, options).objects:
        if obj["kind"] != "Deployment":
            continue
        labels = obj["metadata"]["labels"]
        if labels["fusioninfer.io/component-type"] != "router":
            out[labels["fusioninfer.io/role-name"]] = obj
    return out


def the_deployment(service: InferenceService, options: BuildOptions | None = None) -> Manifest:
    (only,) = deployments(service, options).values()
    return only


def our_labels(service: str, role_name: str, ctype: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "fusioninfer",
        "app.kubernetes.io/instance": service,
        "app.kubernetes.io/component": ctype,
        "fusioninfer.io/service": service,
        "fusioninfer.io/role-name": role_name,
        "fusioninfer.io/component-type": ctype,
    }


def topologies() -> dict[str, InferenceService]:
    """Every shape a serving role's Deployment comes in, each role's pods carrying the user's metadata."""
    user: dict[str, Any] = {
        "pod_labels": {"team": "ml", "app.kubernetes.io/name": "qwen"},
        "pod_annotations": {"note": "keep me"},
    }
    ns = "ns"
    return {
        "monolithic": parse(InferenceServiceWrapper().namespace(ns).worker("w", **user).obj()),
        "monolithic-router": parse(
            InferenceServiceWrapper().namespace(ns).router(parent=None).worker("w", **user).obj()
        ),
        "pd": parse(
            InferenceServiceWrapper()
            .namespace(ns)
            .router("pd-disaggregation", parent=None)
            .prefiller("p", **user)
            .decoder("d", **user)
            .obj()
        ),
        "pd-volcano": parse(
            InferenceServiceWrapper()
            .namespace(ns)
            .prefiller("p", **user)
            .decoder("d", **user)
            .spec(schedulingStrategy={"schedulerName": "volcano", "queue": "q"})
            .obj()
        ),
        "gang-enabled": parse(
            InferenceServiceWrapper()
            .namespace(ns)
            .worker("w", **user)
            .spec(schedulingStrategy={"gangScheduling": "Enabled"})
            .obj()
        ),
    }


# --- identity and labels -----------------------------------------------------------------------------
def test_name_namespace_and_kind() -> None:
    dep = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("inference").obj()))
    assert dep["apiVersion"] == "apps/v1"
    assert dep["kind"] == "Deployment"
    assert dep["metadata"]["name"] == "svc-inference"
    assert dep["metadata"]["namespace"] == "ns"


def test_namespace_defaults_to_default() -> None:
    assert the_deployment(parse(InferenceServiceWrapper().worker("w").obj()))["metadata"]["namespace"] == "default"


def test_our_labels_on_the_deployment() -> None:
    assert the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w").obj()))["metadata"][
        "labels"
    ] == our_labels("svc", "w", "worker")


@pytest.mark.parametrize("name", sorted(topologies()))
def test_every_serving_deployment_is_labelled_and_selects_its_pods(name: str) -> None:
    service = topologies()[name]
    deps = deployments(service)
    assert set(deps) == {r.name for r in service.serving_roles}
    for role_name, dep in deps.items():
        ctype = dep["metadata"]["labels"]["fusioninfer.io/component-type"]
        assert dep["metadata"]["labels"] == our_labels("svc", role_name, ctype)
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector == {"fusioninfer.io/service": "svc", "fusioninfer.io/role-name": role_name}
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), "the selector must match the pod template"


@pytest.mark.parametrize("name", sorted(topologies()))
def test_user_template_labels_and_annotations_are_never_dropped(name: str) -> None:
    for role_name, dep in deployments(topologies()[name]).items():
        meta = dep["spec"]["template"]["metadata"]
        ctype = dep["metadata"]["labels"]["fusioninfer.io/component-type"]
        assert meta["labels"]["team"] == "ml"
        assert meta["labels"]["app.kubernetes.io/name"] == "qwen"
        assert our_labels("svc", role_name, ctype).items() <= meta["labels"].items()
        assert meta["annotations"]["note"] == "keep me"


def test_selector_does_not_depend_on_mutable_fields() -> None:
    # The selector of a Deployment is immutable: changing replicas, the template or the type must not change it.
    a = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w").obj()))
    b = the_deployment(
        parse(InferenceServiceWrapper().namespace("ns").worker("w", replicas=5, rollout={"maxSurge": 2}).obj())
    )
    assert a["spec"]["selector"] == b["spec"]["selector"]


def test_selectors_of_two_roles_do_not_overlap() -> None:
    deps = deployments(parse(InferenceServiceWrapper().namespace("ns").prefiller("p").decoder("d").obj()))
    p, d = deps["p"]["spec"], deps["d"]["spec"]
    assert not p["selector"]["matchLabels"].items() <= d["template"]["metadata"]["labels"].items()
    assert not d["selector"]["matchLabels"].items() <= p["template"]["metadata"]["labels"].items()


def test_user_pod_spec_is_kept() -> None:
    template: dict[str, Any] = {
        "spec": {
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [
                {
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.11.0",
                    "args": ["--model", "m"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    "env": [{"name": "A", "value": "1"}],
                }
            ],
        }
    }
    spec = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w", template=template).obj()))[
        "spec"
    ]["template"]["spec"]
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["tolerations"] == template["spec"]["tolerations"]
    (container,) = spec["containers"]
    assert template["spec"]["containers"][0].items() <= container.items()


# --- replicas ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, 1), ({"replicas": 3}, 3), ({"replicas": 0}, 0), ({"roleReplicas": 2}, 2)],
    ids=["default", "replicas", "zero", "roleReplicas-alias"],
)
def test_replicas(fields: dict[str, Any], expected: int) -> None:
    assert (
        the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w", **fields).obj()))["spec"]["replicas"]
        == expected
    )


def test_each_role_gets_its_own_replicas() -> None:
    deps = deployments(
        parse(InferenceServiceWrapper().namespace("ns").prefiller("p", replicas=2).decoder("d", roleReplicas=4).obj())
    )
    assert {n: d["spec"]["replicas"] for n, d in deps.items()} == {"p": 2, "d": 4}


@pytest.mark.parametrize("multinode", [{"multinode": {"nodeCount": 1}}, {"podReplicas": 1}])
def test_one_node_per_replica_is_still_a_deployment(multinode: dict[str, Any]) -> None:
    assert (
        the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w", replicas=2, **multinode).obj()))[
            "spec"
        ]["replicas"]
        == 2
    )


@pytest.mark.parametrize("multinode", [{"multinode": {"nodeCount": 2}}, {"podReplicas": 3}])
def test_multinode_roles_are_not_deployments(multinode: dict[str, Any]) -> None:
    service = parse(InferenceServiceWrapper().namespace("ns").worker("w", **multinode).obj())
    assert deployments(service) == {}
    assert "svc-w" in {o["metadata"]["name"] for o in build(service).objects}


# --- owner reference ---------------------------------------------------------------------------------
def test_no_owner_reference_without_a_uid() -> None:
    for obj in build(topologies()["pd"]).objects:
        assert "ownerReferences" not in obj["metadata"], obj["kind"]


def test_owner_reference_on_every_child_once_the_uid_is_known() -> None:
    expected = [
        {
            "apiVersion": "fusioninfer.io/v1alpha1",
            "kind": "InferenceService",
            "name": "svc",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    objects = build(topologies()["pd"], BuildOptions(owner_uid="1234-abcd")).objects
    assert objects
    for obj in objects:
        assert obj["metadata"]["ownerReferences"] == expected, obj["kind"]


def test_empty_uid_is_no_uid() -> None:
    dep = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w").obj()), BuildOptions(owner_uid=""))
    assert "ownerReferences" not in dep["metadata"]


# --- rolling update ----------------------------------------------------------------------------------
def test_rolling_update_defaults_need_no_spare_gpu() -> None:
    strategy = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w").obj()))["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        ({"maxSurge": 1}, {"maxSurge": 1, "maxUnavailable": 1}),
        ({"maxSurge": 1, "maxUnavailable": 0}, {"maxSurge": 1, "maxUnavailable": 0}),
        ({"maxUnavailable": "50%"}, {"maxSurge": 0, "maxUnavailable": "50%"}),
        ({"maxSurge": "25%", "maxUnavailable": "25%"}, {"maxSurge": "25%", "maxUnavailable": "25%"}),
        ({}, {"maxSurge": 0, "maxUnavailable": 1}),
    ],
)
def test_rolling_update_overrides(rollout: dict[str, Any], expected: dict[str, Any]) -> None:
    dep = the_deployment(parse(InferenceServiceWrapper().namespace("ns").worker("w", rollout=rollout).obj()))
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": expected}


def test_rollout_is_per_role() -> None:
    deps = deployments(
        parse(InferenceServiceWrapper().namespace("ns").prefiller("p", rollout={"maxSurge": 2}).decoder("d").obj())
    )
    assert deps["p"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 1}
    assert deps["d"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_rolling_update_helper_matches_the_deployment() -> None:
    service = parse(InferenceServiceWrapper().namespace("ns").worker("w", rollout={"maxUnavailable": 2}).obj())
    assert rolling_update(service.roles[0]) == {"maxSurge": 0, "maxUnavailable": 2}


# --- purity ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(topologies()))
def test_rendering_is_deterministic(name: str) -> None:
    first = build(topologies()[name]).objects
    second = build(topologies()[name]).objects
    assert first == second
    assert yaml.safe_dump_all(first, sort_keys=True) == yaml.safe_dump_all(second, sort_keys=True)


@pytest.mark.parametrize("name", sorted(topologies()))
def test_rendering_does_not_mutate_the_service(name: str) -> None:
    service = topologies()[name]
    before = service.model_dump(by_alias=True)
    build(service)
    build(service, BuildOptions(owner_uid="u"))
    assert service.model_dump(by_alias=True) == before


def test_output_does_not_alias_the_service() -> None:
    service = parse(InferenceServiceWrapper().namespace("ns").worker("w").obj())
    before = service.model_dump(by_alias=True)
    dep = the_deployment(service)
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    dep["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert service.model_dump(by_alias=True) == before
    assert the_deployment(service)["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.11.0"


def test_build_deployment_directly() -> None:
    service = parse(InferenceServiceWrapper().namespace("ns").worker("w", replicas=2).obj())
    dep = build_deployment(BuildContext(service), service.roles[0])
    assert dep == the_deployment(service)


def test_deployments_come_out_sorted_by_name() -> None:
    service = parse(InferenceServiceWrapper().namespace("ns").prefiller("zeta").decoder("alpha").prefiller("mid").obj())
    names = [o["metadata"]["name"] for o in build(service).objects if o["kind"] == "Deployment"]
    assert names == sorted(names)
    assert set(names) >= {"svc-alpha", "svc-mid", "svc-zeta"}
