"""The InferenceService v1alpha1 models: wire names, defaults, derived values, status shape."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api import router_spec
from fusioninfer.api import v1alpha1 as api
from fusioninfer.api.router_spec import RoutingStrategy
from fusioninfer.api.status_spec import ComponentPhase, ComponentStatus, Condition, InferenceServiceStatus
from fusioninfer.api.v1alpha1 import ComponentType, InferenceService, Role, RolloutStrategy


def role(**fields: Any) -> Role:
    """A worker `r` with exactly `fields` (no template, unlike the shared builders): one field at a time."""
    return Role.model_validate({"name": "r", "componentType": "worker", **fields})


# --- identity ---------------------------------------------------------------------------------------
def test_group_version_kind() -> None:
    assert api.API_VERSION == "fusioninfer.io/v1alpha1"
    assert api.KIND == "InferenceService"
    assert api.PLURAL == "inferenceservices"


def test_short_name_does_not_clash_with_kserve() -> None:
    assert api.SHORT_NAMES == ("fisvc",)
    assert "isvc" not in api.SHORT_NAMES


def test_enums_have_the_documented_values() -> None:
    assert [t.value for t in ComponentType] == ["worker", "prefiller", "decoder", "router"]
    assert [s.value for s in RoutingStrategy] == [
        "prefix-cache",
        "kv-cache-utilization",
        "queue-size",
        "lora-affinity",
        "pd-disaggregation",
    ]
    assert router_spec.DEFAULT_STRATEGY is RoutingStrategy.PREFIX_CACHE


# --- wire names -------------------------------------------------------------------------------------
def test_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    r = role(roleReplicas=2, podReplicas=3, endpointPickerConfig="x", componentType="router")
    assert (r.role_replicas, r.pod_replicas, r.endpoint_picker_config) == (2, 3, "x")
    dumped = r.model_dump(by_alias=True, exclude_none=True)
    assert dumped == {
        "name": "r",
        "componentType": "router",
        "roleReplicas": 2,
        "podReplicas": 3,
        "endpointPickerConfig": "x",
    }


def test_round_trip_keeps_the_document() -> None:
    doc = {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {
            "schedulingStrategy": {"schedulerName": "volcano", "queue": "q", "priorityClassName": "high"},
            "roles": [
                {"name": "router", "componentType": "router", "strategy": "queue-size", "httproute": {"x": [1]}},
                {
                    "name": "w",
                    "componentType": "worker",
                    "replicas": 2,
                    "multinode": {"nodeCount": 2, "backend": "mp"},
                    "rollout": {"maxSurge": "25%", "maxUnavailable": 0, "partition": 1},
                    "template": {"metadata": {"labels": {"l": "v"}}, "spec": {"containers": [{"name": "c"}]}},
                },
            ],
        },
    }
    parsed = InferenceService.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == doc


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Role, {"name": "r", "componentType": "worker", "replica": 1}),
        (RolloutStrategy, {"maxSurges": 1}),
        (api.Multinode, {"nodeCount": 2, "nodes": 2}),
        (api.PodTemplate, {"spec": {}, "kind": "Pod"}),
        (api.InferenceServiceSpec, {"roles": [{"name": "r", "componentType": "worker"}], "router": {}}),
        (ComponentStatus, {**dict.fromkeys(["desiredReplicas", "readyReplicas", "nodesPerReplica"], 1), "x": 1}),
    ],
)
def test_our_structs_reject_unknown_fields(model: type[Any], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert "extra_forbidden" in {e["type"] for e in info.value.errors()}


def test_object_metadata_and_template_metadata_keep_unknown_fields() -> None:
    svc = InferenceService.model_validate(
        InferenceServiceWrapper()
        .role({"name": "w", "componentType": "worker", "template": {"metadata": {"name": "x"}}})
        .metadata(uid="u-1", generation=3, resourceVersion="42", creationTimestamp="2025-01-01T00:00:00Z")
        .obj()
    )
    assert (svc.metadata.uid, svc.metadata.generation, svc.metadata.resource_version) == ("u-1", 3, "42")
    assert svc.metadata.model_dump(by_alias=True, exclude_none=True)["creationTimestamp"] == "2025-01-01T00:00:00Z"
    template = svc.roles[0].template
    assert template is not None
    assert template.metadata is not None
    assert template.metadata.model_dump(exclude_none=True) == {"name": "x"}


def test_pod_spec_is_kept_verbatim() -> None:
    spec = {"containers": [{"name": "c", "image": "i", "futureField": {"a": [1, 2]}}], "hostIPC": True}
    r = role(template={"spec": spec})
    assert r.template is not None
    assert r.template.spec == spec


# --- defaults and aliases ---------------------------------------------------------------------------
def test_defaults_are_resolved_in_code_not_stored() -> None:
    r = role()
    assert (r.replicas, r.strategy, r.multinode, r.engine) == (None, None, None, None)
    assert r.effective_replicas == 1
    assert r.node_count == 1
    assert not r.is_multinode
    assert r.effective_strategy is RoutingStrategy.PREFIX_CACHE


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1),
        ({"replicas": 0}, 0),
        ({"replicas": 5}, 5),
        ({"roleReplicas": 3}, 3),
        ({"replicas": 2, "roleReplicas": 9}, 2),
    ],
)
def test_effective_replicas(fields: dict[str, Any], expected: int) -> None:
    assert role(**fields).effective_replicas == expected


@pytest.mark.parametrize(
    ("fields", "count", "multinode"),
    [
        ({}, 1, False),
        ({"multinode": {"nodeCount": 1}}, 1, False),
        ({"multinode": {"nodeCount": 4}}, 4, True),
        ({"podReplicas": 2}, 2, True),
        ({"podReplicas": 1}, 1, False),
    ],
)
def test_node_count_and_multinode(fields: dict[str, Any], count: int, multinode: bool) -> None:
    r = role(**fields)
    assert r.node_count == count
    assert r.is_multinode is multinode


def test_explicit_strategy_wins() -> None:
    assert role(componentType="router", strategy="queue-size").effective_strategy is RoutingStrategy.QUEUE_SIZE


def test_service_views() -> None:
    svc = InferenceService.model_validate(
        InferenceServiceWrapper().router(parent=None).prefiller("p").decoder("d").obj()
    )
    assert svc.name == "svc"
    assert svc.namespace == "default"
    assert svc.router is not None
    assert svc.router.name == "router"
    assert [r.name for r in svc.serving_roles] == ["p", "d"]
    assert svc.is_disaggregated


def test_monolithic_service_views() -> None:
    svc = InferenceService.model_validate(InferenceServiceWrapper().namespace("team-a").worker("w").obj())
    assert svc.namespace == "team-a"
    assert svc.router is None
    assert not svc.is_disaggregated


def test_field_lists_name_real_role_fields() -> None:
    aliases = {f.alias for f in Role.model_fields.values()}
    assert set(api.ROUTER_ONLY_FIELDS) <= aliases
    assert set(api.SERVING_ONLY_FIELDS) <= aliases
    assert not set(api.ROUTER_ONLY_FIELDS) & set(api.SERVING_ONLY_FIELDS)


# --- schema-level bounds ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"replicas": -1},
        {"roleReplicas": -1},
        {"podReplicas": 0},
        {"multinode": {"nodeCount": 0}},
        {"multinode": {"nodeCount": 65}},
        {"name": ""},
        {"name": "x" * 64},
        {"rollout": {"partition": -1}},
        {"rollout": {"maxSurge": "1.5%"}},
        {"componentType": "Worker"},
    ],
)
def test_bounds(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        role(**fields)


@pytest.mark.parametrize("value", [0, 3, "0%", "25%", "100%"])
def test_int_or_string_accepts_integers_and_percentages(value: Any) -> None:
    assert RolloutStrategy.model_validate({"maxSurge": value}).max_surge == value


# --- status -----------------------------------------------------------------------------------------
def test_component_status_has_exactly_the_fields_of_the_design() -> None:
    assert [f.alias for f in ComponentStatus.model_fields.values()] == [
        "desiredReplicas",
        "readyReplicas",
        "nodesPerReplica",
        "totalPods",
        "readyPods",
        "phase",
        "lastUpdateTime",
    ]
    assert [p.value for p in ComponentPhase] == ["Pending", "Deploying", "Running", "Failed", "Unknown"]


def test_status_round_trip() -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Running",
        "readyRoles": "1/1",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "observedGeneration": 2,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
                "reason": "AllRolesReady",
                "message": "",
            }
        ],
        "components": {
            "w": {
                "desiredReplicas": 2,
                "readyReplicas": 2,
                "nodesPerReplica": 2,
                "totalPods": 4,
                "readyPods": 4,
                "phase": "Running",
            }
        },
    }
    parsed = InferenceServiceStatus.model_validate(status)
    assert parsed.model_dump(by_alias=True, exclude_none=True) == status


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "Ready", "status": "Yes", "lastTransitionTime": "t", "reason": "R"},
        {"type": "Ready", "status": "True", "lastTransitionTime": "t", "reason": ""},
        {"type": "", "status": "True", "lastTransitionTime": "t", "reason": "R"},
        {"type": "Ready", "status": "True", "reason": "R"},
    ],
    ids=["status-enum", "empty-reason", "empty-type", "no-transition-time"],
)
def test_condition_follows_metav1_condition(condition: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Condition.model_validate(condition)


def test_models_do_not_share_mutable_defaults() -> None:
    a, b = role(template={"metadata": {"labels": {"x": "1"}}}), role()
    assert b.template is None
    assert a.template is not None
    assert a.template.metadata is not None
    assert a.template.metadata.labels == {"x": "1"}
