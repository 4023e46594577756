"""`parse()` / `validate()`: one test per rule, each with the exact message and field path.

A person reads these messages in `fusioninfer validate`, in a `Valid=False` condition and in an
Event, so the wording and the path are part of the contract: a change must be deliberate.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper, engine_container, router_role, serving_role

from fusioninfer.api import naming
from fusioninfer.api.errors import FieldError, InvalidSpec, quote
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse, validate
from fusioninfer.builders import build

DNS_HINT = (
    "must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter "
    "or digit)"
)
TOPOLOGY = "a service has exactly one worker role (monolithic) or prefiller and decoder roles (disaggregated)"


def errors(obj: Any) -> list[str]:
    with pytest.raises(InvalidSpec) as info:
        parse(obj)
    assert info.value.errors, "InvalidSpec must carry at least one error"
    return [str(e) for e in info.value.errors]


def assert_error(obj: Any, expected: str) -> None:
    """`obj` is rejected with exactly this one error."""
    assert errors(obj) == [expected]


def assert_valid(obj: Any) -> InferenceService:
    isvc = parse(obj)
    assert validate(isvc) == []
    build(isvc)  # a valid spec always renders
    return isvc


# --- baseline --------------------------------------------------------------------------------------
def test_minimal_monolithic_service_is_valid() -> None:
    isvc = assert_valid(InferenceServiceWrapper().worker().obj())
    assert isvc.name == "svc"
    assert [r.name for r in isvc.roles] == ["inference"]


def test_disaggregated_service_with_router_is_valid() -> None:
    assert_valid(InferenceServiceWrapper().router("pd-disaggregation").prefiller().decoder().obj())


def test_invalid_spec_message_joins_every_error() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse(InferenceServiceWrapper().worker("Bad").worker("Bad2").obj())
    assert str(info.value) == "; ".join(str(e) for e in info.value.errors)
    assert len(info.value.errors) == 3


# --- role names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Inference", "1abc", "a_b", "abc-", "a.b", "-abc", "ab c"])
def test_role_name_must_be_dns1035_label(name: str) -> None:
    assert_error(
        InferenceServiceWrapper().worker(name).obj(), f"spec.roles[0].name: Invalid value: {quote(name)}: {DNS_HINT}"
    )


@pytest.mark.parametrize("name", ["a", "a1", "a-b", "x" * 59])
def test_role_name_accepts_dns1035_labels(name: str) -> None:
    assert_valid(InferenceServiceWrapper().worker(name).obj())


@pytest.mark.parametrize("where", ["role", "service"])
def test_names_with_a_trailing_newline_are_rejected(where: str) -> None:
    obj = (
        InferenceServiceWrapper().worker("w\n").obj()
        if where == "role"
        else InferenceServiceWrapper("svc\n").worker().obj()
    )
    path = "spec.roles[0].name" if where == "role" else "metadata.name"
    errs = errors(obj)
    assert len(errs) == 1
    assert errs[0].startswith(f"{path}: Invalid value: ")


def test_empty_role_name_is_required() -> None:
    assert_error(InferenceServiceWrapper().worker("").obj(), "spec.roles[0].name: Required value: must not be empty")


def test_role_names_must_be_unique() -> None:
    assert_error(
        InferenceServiceWrapper().router(name="same").worker("same").obj(),
        'spec.roles[1].name: Duplicate value: "same": role names must be unique',
    )


def test_every_duplicate_role_name_is_reported() -> None:
    obj = InferenceServiceWrapper().router(name="a").prefiller("a").decoder("a").obj()
    assert errors(obj) == [
        'spec.roles[1].name: Duplicate value: "a": role names must be unique',
        'spec.roles[2].name: Duplicate value: "a": role names must be unique',
    ]


# --- child-name length budgets ---------------------------------------------------------------------
def test_deployment_name_budget_is_63() -> None:
    role = "r" * 60  # "svc-" + 60 = 64
    assert_error(
        InferenceServiceWrapper().worker(role).obj(),
        f'spec.roles[0].name: Too long: the Deployment name "svc-{role}" (64 characters) would exceed 63 '
        "characters; shorten the role or service name",
    )


def test_deployment_name_of_exactly_63_fits() -> None:
    assert_valid(InferenceServiceWrapper().worker("r" * 59).obj())


@pytest.mark.parametrize(
    "multinode",
    [{"multinode": {"nodeCount": 2}}, {"podReplicas": 2}],
    ids=["multinode", "podReplicas-alias"],
)
def test_multinode_leaderworkerset_name_budget_is_46(multinode: dict[str, Any]) -> None:
    role = "r" * 43  # "svc-" + 43 = 47
    assert_error(
        InferenceServiceWrapper().worker(role, **multinode).obj(),
        f'spec.roles[0].name: Too long: the LeaderWorkerSet name "svc-{role}" (47 characters) would exceed 46 '
        "characters; shorten the role or service name",
    )


def test_multinode_name_of_exactly_46_fits() -> None:
    assert_valid(InferenceServiceWrapper().worker("r" * 42, multinode={"nodeCount": 2}).obj())


def test_single_node_multinode_block_uses_the_deployment_budget() -> None:
    # nodeCount 1 renders a Deployment, whose budget is 63, not 46.
    assert_valid(InferenceServiceWrapper().worker("r" * 50, multinode={"nodeCount": 1}).obj())


@pytest.mark.parametrize(
    ("length", "what", "suffix"),
    [
        (60, "endpoint picker Service", "-epp"),
        (59, "InferencePool", "-pool"),
        (56, "Gateway", "-gateway"),
        (53, "endpoint picker ConfigMap", "-epp-config"),
    ],
)
def test_service_level_child_names_must_fit(length: int, what: str, suffix: str) -> None:
    name = "s" * length
    assert_error(
        InferenceServiceWrapper(name).router(gateway={"className": "istio"}).worker("w").obj(),
        f'metadata.name: Too long: {length} characters: the {what} name "{name}{suffix}" would exceed 63 characters',
    )


def test_longest_service_name_fits_every_service_level_name() -> None:
    longest = max(n for n in range(1, 64) if all(b.fits for b in naming.service_level_names("s" * n)))
    assert longest == 52  # "-epp-config" is the longest suffix
    assert_valid(InferenceServiceWrapper("s" * longest).router().worker("w").obj())


def test_name_budgets_only_name_objects_the_service_has() -> None:
    """A worker-only service has no picker: a long name is not reported against one."""
    assert_valid(InferenceServiceWrapper("s" * 61).worker("w").obj())  # "-w" -> a 63-character Deployment
    messages = errors(InferenceServiceWrapper("s" * 70).worker("w").obj())
    assert messages[0] == (
        'metadata.name: Too long: 70 characters: the label value fusioninfer.io/service name "'
        + "s" * 70
        + '" would exceed 63 characters'
    )
    assert not any("endpoint picker" in m or "InferencePool" in m or "Gateway" in m for m in messages)
    # A router role names no object of its own (its objects are `{service}-epp...`).
    assert_valid(InferenceServiceWrapper("svc").router(name="r" * 60).worker("w").obj())
    # With a router but no gateway block, the Gateway is not a budget either.
    assert_error(
        InferenceServiceWrapper("s" * 56).router().worker("w").obj(),
        'metadata.name: Too long: 56 characters: the endpoint picker ConfigMap name "'
        + "s" * 56
        + '-epp-config" would exceed 63 characters',
    )


# --- service name ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["My-Svc", "1svc", "svc.example", "svc_1", "svc-"])
def test_service_name_must_be_dns1035_label(name: str) -> None:
    assert_error(
        InferenceServiceWrapper(name).worker().obj(),
        f"metadata.name: Invalid value: {quote(name)}: {DNS_HINT}, as it names Services",
    )


def test_service_name_is_required() -> None:
    obj = InferenceServiceWrapper().worker().obj()
    del obj["metadata"]["name"]
    assert_error(obj, "metadata.name: Required value")


# --- topology --------------------------------------------------------------------------------------
def test_monolithic_has_exactly_one_worker() -> None:
    assert_error(
        InferenceServiceWrapper().worker("a").worker("b").obj(),
        'spec.roles[1].componentType: Invalid value: "worker": a monolithic service has exactly one worker role',
    )


@pytest.mark.parametrize(("name", "ctype"), [("prefill", "prefiller"), ("decode", "decoder")])
def test_monolithic_has_no_prefiller_or_decoder(name: str, ctype: str) -> None:
    assert_error(
        InferenceServiceWrapper().worker().role(serving_role(name, ctype)).obj(),
        f'spec.roles[1].componentType: Invalid value: "{ctype}": {TOPOLOGY}, not both',
    )


def test_service_needs_a_serving_role() -> None:
    assert_error(InferenceServiceWrapper().router().obj(), f"spec.roles: Required value: {TOPOLOGY}")


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        ((serving_role("prefill", "prefiller"),), "decoder"),
        ((serving_role("decode", "decoder"),), "prefiller"),
        ((serving_role("prefill", "prefiller"), serving_role("p2", "prefiller")), "decoder"),
    ],
    ids=["only-prefiller", "only-decoder", "two-prefillers"],
)
def test_disaggregated_needs_prefiller_and_decoder(roles: tuple[dict[str, Any], ...], missing: str) -> None:
    assert_error(
        InferenceServiceWrapper().roles(*roles).obj(),
        "spec.roles: Required value: a disaggregated service needs at least one prefiller and one decoder "
        f"role (missing: {missing})",
    )


def test_disaggregated_allows_several_prefillers_and_decoders() -> None:
    assert_valid(InferenceServiceWrapper().prefiller("p1").prefiller("p2").decoder("d1").decoder("d2").obj())


def test_at_most_one_router() -> None:
    assert_error(
        InferenceServiceWrapper().router(name="r1").worker().role(router_role(name="r2")).obj(),
        "spec.roles[2].componentType: Too many: at most one router role",
    )


def test_router_is_optional() -> None:
    assert assert_valid(InferenceServiceWrapper().worker().obj()).router is None


# --- router-only and serving-only fields -----------------------------------------------------------
ROUTER_ONLY: dict[str, Any] = {
    "strategy": "prefix-cache",
    "httproute": {"parentRefs": [{"name": "gw"}]},
    "endpointPickerConfig": "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n",
    "endpointPicker": {"replicas": 2},
    "gateway": {"className": "istio"},
}


@pytest.mark.parametrize("field", sorted(ROUTER_ONLY))
@pytest.mark.parametrize(
    ("name", "ctype"), [("inference", "worker"), ("prefill", "prefiller")], ids=["worker", "prefiller"]
)
def test_router_only_fields_are_forbidden_on_serving_roles(field: str, name: str, ctype: str) -> None:
    svc = InferenceServiceWrapper().role(serving_role(name, ctype, **{field: ROUTER_ONLY[field]}))
    if ctype == "prefiller":
        svc.decoder()
    assert_error(svc.obj(), f"spec.roles[0].{field}: Forbidden: only allowed on a router role")


@pytest.mark.parametrize("field", sorted(ROUTER_ONLY))
def test_router_only_fields_are_allowed_on_the_router(field: str) -> None:
    assert_valid(InferenceServiceWrapper().router(**{field: ROUTER_ONLY[field]}).worker().obj())


SERVING_ONLY: dict[str, Any] = {"multinode": {"nodeCount": 2}, "podReplicas": 2, "engine": "vllm"}


@pytest.mark.parametrize("field", sorted(SERVING_ONLY))
def test_serving_only_fields_are_forbidden_on_the_router(field: str) -> None:
    assert_error(
        InferenceServiceWrapper().router(**{field: SERVING_ONLY[field]}).worker().obj(),
        f"spec.roles[0].{field}: Forbidden: not allowed on a router role",
    )


def test_rollout_is_forbidden_on_the_router() -> None:
    assert_error(
        InferenceServiceWrapper().router(rollout={"maxSurge": 1}).worker().obj(),
        "spec.roles[0].rollout: Forbidden: not allowed on a router role",
    )


def test_router_containers_are_generated() -> None:
    obj = InferenceServiceWrapper().router(template={"spec": {"containers": [engine_container()]}}).worker().obj()
    assert_error(
        obj,
        "spec.roles[0].template.spec.containers: Forbidden: the router's containers are generated; use "
        "endpointPicker to change the image or flags",
    )


def test_router_template_without_containers_is_allowed() -> None:
    assert_valid(InferenceServiceWrapper().router(template={"spec": {"nodeSelector": {"pool": "cpu"}}}).worker().obj())


# --- pd-disaggregation -----------------------------------------------------------------------------
def test_pd_disaggregation_strategy_requires_disaggregated_topology() -> None:
    assert_error(
        InferenceServiceWrapper().router("pd-disaggregation").worker().obj(),
        'spec.roles[0].strategy: Invalid value: "pd-disaggregation": requires prefiller and decoder roles',
    )


@pytest.mark.parametrize("strategy", ["prefix-cache", "kv-cache-utilization", "queue-size", "lora-affinity"])
def test_other_strategies_work_with_monolithic(strategy: str) -> None:
    assert_valid(InferenceServiceWrapper().router(strategy).worker().obj())


def test_unknown_strategy_is_unsupported() -> None:
    assert_error(
        InferenceServiceWrapper().router("round-robin").worker().obj(),
        'spec.roles[0].strategy: Unsupported value: "round-robin": supported values: "prefix-cache", '
        '"kv-cache-utilization", "queue-size", "lora-affinity", "pd-disaggregation"',
    )


# --- serving pod template --------------------------------------------------------------------------
@pytest.mark.parametrize("ctype", ["worker", "prefiller", "decoder"])
def test_serving_role_needs_a_template(ctype: str) -> None:
    role = {"name": "x", "componentType": ctype}
    others = {
        "worker": [],
        "prefiller": [serving_role("decode", "decoder")],
        "decoder": [serving_role("prefill", "prefiller")],
    }[ctype]
    why = "a serving role needs a pod template or a model (its own or spec.model)"
    assert_error(
        InferenceServiceWrapper().role(role).roles(*others).obj(), f"spec.roles[0].template: Required value: {why}"
    )


@pytest.mark.parametrize("template", [{}, {"spec": {}}, {"metadata": {"labels": {"a": "b"}}}])
def test_serving_role_needs_a_pod_spec(template: dict[str, Any]) -> None:
    role = {"name": "w", "componentType": "worker", "template": template}
    assert_error(
        InferenceServiceWrapper().role(role).obj(),
        "spec.roles[0].template.spec: Required value: a serving role needs a pod spec",
    )


@pytest.mark.parametrize("containers", [None, [], {"name": "c"}, "vllm"])
def test_serving_role_needs_containers(containers: Any) -> None:
    spec: dict[str, Any] = {"nodeSelector": {"a": "b"}}
    if containers is not None:
        spec["containers"] = containers
    role = {"name": "w", "componentType": "worker", "template": {"spec": spec}}
    assert_error(
        InferenceServiceWrapper().role(role).obj(),
        "spec.roles[0].template.spec.containers: Required value: at least one container",
    )


@pytest.mark.parametrize("item", ["vllm", 1, None, ["a"]])
def test_container_must_be_an_object(item: Any) -> None:
    assert_error(
        InferenceServiceWrapper().worker("w", containers=[engine_container(), item]).obj(),
        "spec.roles[0].template.spec.containers[1]: Invalid value: must be an object",
    )


@pytest.mark.parametrize("name", [None, "", 5])
def test_container_needs_a_name(name: Any) -> None:
    c = engine_container()
    if name is None:
        del c["name"]
    else:
        c["name"] = name
    assert_error(
        InferenceServiceWrapper().worker("w", container=c).obj(),
        "spec.roles[0].template.spec.containers[0].name: Required value",
    )


@pytest.mark.parametrize("image", [None, "", 5])
def test_container_needs_an_image(image: Any) -> None:
    c = engine_container()
    if image is None:
        del c["image"]
    else:
        c["image"] = image
    assert_error(
        InferenceServiceWrapper().worker("w", container=c).obj(),
        "spec.roles[0].template.spec.containers[0].image: Required value",
    )


def test_container_names_must_be_unique() -> None:
    assert_error(
        InferenceServiceWrapper()
        .worker(
            "w",
            containers=[
                engine_container(name="c"),
                engine_container(name="sidecar", image="busybox"),
                engine_container(name="c", image="busybox"),
            ],
        )
        .obj(),
        'spec.roles[0].template.spec.containers[2].name: Duplicate value: "c"',
    )


@pytest.mark.parametrize("key", ["command", "args"])
@pytest.mark.parametrize("value", ["vllm serve", [1], ["a", None], {"a": "b"}, ["--port", 8000]])
def test_command_and_args_must_be_lists_of_strings(key: str, value: Any) -> None:
    assert_error(
        InferenceServiceWrapper().worker("w", container=engine_container(**{key: value})).obj(),
        f"spec.roles[0].template.spec.containers[0].{key}: Invalid value: must be a list of strings",
    )


def test_every_container_problem_is_reported() -> None:
    bad = {"command": "x"}
    obj = InferenceServiceWrapper().worker("w", containers=[engine_container(), bad]).obj()
    assert errors(obj) == [
        "spec.roles[0].template.spec.containers[1].command: Invalid value: must be a list of strings",
        "spec.roles[0].template.spec.containers[1].image: Required value",
        "spec.roles[0].template.spec.containers[1].name: Required value",
    ]


# --- aliases of the design proposal ----------------------------------------------------------------
def test_replicas_and_role_replicas_are_exclusive() -> None:
    assert_error(
        InferenceServiceWrapper().worker(replicas=2, roleReplicas=2).obj(),
        "spec.roles[0].roleReplicas: Forbidden: deprecated alias of replicas; set only replicas",
    )


def test_multinode_and_pod_replicas_are_exclusive() -> None:
    assert_error(
        InferenceServiceWrapper().worker(multinode={"nodeCount": 2}, podReplicas=2).obj(),
        "spec.roles[0].podReplicas: Forbidden: deprecated alias of multinode.nodeCount; set only multinode",
    )


def test_aliases_alone_are_accepted() -> None:
    isvc = assert_valid(InferenceServiceWrapper().worker(roleReplicas=3, podReplicas=2).obj())
    assert isvc.roles[0].effective_replicas == 3
    assert isvc.roles[0].node_count == 2


def test_multinode_backend_is_vllm_only() -> None:
    assert_error(
        InferenceServiceWrapper().worker(engine="sglang", multinode={"nodeCount": 2, "backend": "ray"}).obj(),
        "spec.roles[0].multinode.backend: Forbidden: only applies to vLLM; SGLang has a single multi-node mode",
    )


# --- numeric bounds (schema) -----------------------------------------------------------------------
def test_node_count_must_be_at_least_one() -> None:
    assert_error(
        InferenceServiceWrapper().worker(multinode={"nodeCount": 0}).obj(),
        "spec.roles[0].multinode.nodeCount: Invalid value: 0: must be >= 1",
    )


def test_node_count_path_points_at_the_right_role() -> None:
    obj = InferenceServiceWrapper().router().prefiller().decoder(multinode={"nodeCount": 0}).obj()
    assert_error(obj, "spec.roles[2].multinode.nodeCount: Invalid value: 0: must be >= 1")


def test_node_count_is_required_in_multinode() -> None:
    assert_error(
        InferenceServiceWrapper().worker(multinode={}).obj(), "spec.roles[0].multinode.nodeCount: Required value"
    )


def test_replicas_must_not_be_negative() -> None:
    assert_error(
        InferenceServiceWrapper().worker(replicas=-1).obj(), "spec.roles[0].replicas: Invalid value: -1: must be >= 0"
    )


def test_replicas_has_an_upper_bound() -> None:
    assert_error(
        InferenceServiceWrapper().worker(replicas=10001).obj(),
        "spec.roles[0].replicas: Invalid value: 10001: must be <= 10000",
    )


def test_zero_replicas_is_valid() -> None:
    assert assert_valid(InferenceServiceWrapper().worker(replicas=0).obj()).roles[0].effective_replicas == 0


# --- rollout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rollout",
    [
        {"maxSurge": 0, "maxUnavailable": 0},
        {"maxUnavailable": 0},
        {"maxSurge": "0%", "maxUnavailable": "0%"},
        {"maxSurge": 0, "maxUnavailable": "0%"},
    ],
)
def test_rollout_cannot_be_zero_and_zero(rollout: dict[str, Any]) -> None:
    assert_error(
        InferenceServiceWrapper().worker(rollout=rollout).obj(),
        "spec.roles[0].rollout.maxUnavailable: Invalid value: may not be 0 when maxSurge is 0",
    )


@pytest.mark.parametrize(
    "rollout",
    [{"maxSurge": 1, "maxUnavailable": 0}, {"maxSurge": "25%"}, {"maxUnavailable": "100%"}, {}],
)
def test_rollout_that_makes_progress_is_valid(rollout: dict[str, Any]) -> None:
    assert_valid(InferenceServiceWrapper().worker(rollout=rollout).obj())


def test_rollout_partition_is_for_multinode_roles_only() -> None:
    assert_error(
        InferenceServiceWrapper().worker(rollout={"partition": 1}).obj(),
        "spec.roles[0].rollout.partition: Forbidden: only applies to multi-node roles (LeaderWorkerSet)",
    )


def test_multinode_percentage_budget_that_rounds_to_zero_is_refused_like_the_lws_webhook() -> None:
    """LWS scales maxUnavailable by the replica groups, rounding down: 10% of 2 is 0."""
    assert_error(
        InferenceServiceWrapper()
        .worker(replicas=2, multinode={"nodeCount": 2}, rollout={"maxUnavailable": "10%"})
        .obj(),
        'spec.roles[0].rollout.maxUnavailable: Invalid value: "10%": rounds down to 0 of 2 replica group(s) while '
        "maxSurge is 0, so the LeaderWorkerSet could never roll (its webhook refuses it); use an integer or a "
        "larger percentage",
    )
    assert_valid(
        InferenceServiceWrapper()
        .worker(replicas=10, multinode={"nodeCount": 2}, rollout={"maxUnavailable": "10%"})
        .obj()
    )
    assert_valid(
        InferenceServiceWrapper()
        .worker(replicas=2, multinode={"nodeCount": 2}, rollout={"maxUnavailable": "10%", "maxSurge": "1%"})
        .obj()
    )
    # A Deployment rounds the same way but its controller then allows one: not an error there.
    assert_valid(InferenceServiceWrapper().worker(replicas=2, rollout={"maxUnavailable": "10%"}).obj())


def test_rollout_partition_on_multinode_role_is_valid() -> None:
    assert_valid(InferenceServiceWrapper().worker(multinode={"nodeCount": 2}, rollout={"partition": 1}).obj())


@pytest.mark.parametrize("field", ["maxSurge", "maxUnavailable"])
def test_rollout_percentage_may_not_exceed_100(field: str) -> None:
    assert_error(
        InferenceServiceWrapper()
        .worker(rollout={field: "101%", "maxSurge" if field == "maxUnavailable" else "maxUnavailable": 1})
        .obj(),
        f'spec.roles[0].rollout.{field}: Invalid value: "101%": must be <= 100%',
    )


def test_rollout_value_that_is_no_number_is_rejected() -> None:
    (message,) = errors(InferenceServiceWrapper().worker(rollout={"maxSurge": "lots"}).obj())
    assert message.startswith('spec.roles[0].rollout.maxSurge: Invalid value: "lots": ')


def test_rollout_value_error_mentions_percentages() -> None:
    (message,) = errors(InferenceServiceWrapper().worker(rollout={"maxSurge": "lots"}).obj())
    assert "%" in message


def test_rollout_negative_value_is_rejected() -> None:
    assert errors(InferenceServiceWrapper().worker(rollout={"maxSurge": -1}).obj()) == [
        "spec.roles[0].rollout.maxSurge: Invalid value: -1: must be >= 0"
    ]


@pytest.mark.parametrize("value", ["5", "0"])
def test_rollout_string_without_percent_is_rejected(value: str) -> None:
    errs = errors(InferenceServiceWrapper().worker(rollout={"maxSurge": value, "maxUnavailable": 1}).obj())
    assert len(errs) == 1
    assert errs[0].startswith(f'spec.roles[0].rollout.maxSurge: Invalid value: "{value}"')


# --- reserved labels -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "fusioninfer.io/service",
        "fusioninfer.io/role-name",
        "fusioninfer.io/anything",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
    ],
)
def test_reserved_template_labels_are_forbidden(key: str) -> None:
    assert_error(
        InferenceServiceWrapper().worker(pod_labels={key: "x", "team": "a"}).obj(),
        f"spec.roles[0].template.metadata.labels[{key}]: Forbidden: reserved for the operator",
    )


def test_reserved_labels_are_forbidden_on_the_router_template_too() -> None:
    obj = InferenceServiceWrapper().router(template={"metadata": {"labels": {"fusioninfer.io/x": "y"}}}).worker().obj()
    assert_error(obj, "spec.roles[0].template.metadata.labels[fusioninfer.io/x]: Forbidden: reserved for the operator")


def test_other_template_labels_and_reserved_annotations_are_allowed() -> None:
    assert_valid(
        InferenceServiceWrapper()
        .worker(
            pod_labels={"app.kubernetes.io/name": "qwen", "team": "a"},
            pod_annotations={"fusioninfer.io/note": "annotations are not reserved"},
        )
        .obj()
    )


# --- endpointPickerConfig --------------------------------------------------------------------------
EPP_HEADER = "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
EPP_PATH = "spec.roles[0].endpointPickerConfig"


def test_endpoint_picker_config_valid() -> None:
    text = EPP_HEADER + (
        "plugins:\n- type: prefix-cache-scorer\n- type: max-score-picker\n"
        "schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: prefix-cache-scorer\n"
    )
    assert_valid(InferenceServiceWrapper().router(endpointPickerConfig=text).worker().obj())


def test_endpoint_picker_config_must_be_yaml() -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPickerConfig="plugins: [1").worker().obj(),
        f"{EPP_PATH}: Invalid value: not valid YAML: while parsing a flow sequence",
    )


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text", "", "42"])
def test_endpoint_picker_config_must_be_a_mapping(text: str) -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPickerConfig=text).worker().obj(),
        f"{EPP_PATH}: Invalid value: must be a YAML mapping (an EndpointPickerConfig)",
    )


def test_endpoint_picker_config_kind() -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPickerConfig="kind: ConfigMap\n").worker().obj(),
        f'{EPP_PATH}: Invalid value: kind must be "EndpointPickerConfig"',
    )


def test_endpoint_picker_config_unknown_top_level_keys() -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPickerConfig=EPP_HEADER + "zeta: 1\nalpha: 2\n").worker().obj(),
        f"{EPP_PATH}: Invalid value: unknown top-level keys ['alpha', 'zeta'] (the picker would refuse them)",
    )


def test_endpoint_picker_config_plugins_need_a_type() -> None:
    assert errors(
        InferenceServiceWrapper()
        .router(endpointPickerConfig=EPP_HEADER + "plugins:\n- type: a\n- name: b\n- x\n")
        .worker()
        .obj()
    ) == [
        f"{EPP_PATH}: Invalid value: plugins[1] needs a type",
        f"{EPP_PATH}: Invalid value: plugins[2] needs a type",
    ]


def test_endpoint_picker_config_plugins_not_a_list_is_an_error_not_a_crash() -> None:
    errs = errors(InferenceServiceWrapper().router(endpointPickerConfig=EPP_HEADER + "plugins: 5\n").worker().obj())
    assert errs
    assert all(e.startswith(EPP_PATH) for e in errs)


def test_endpoint_picker_config_plugins_mapping_is_reported_as_not_a_list() -> None:
    errs = errors(
        InferenceServiceWrapper().router(endpointPickerConfig=EPP_HEADER + "plugins: {a: 1}\n").worker().obj()
    )
    assert not any("plugins[0]" in e for e in errs)
    assert any("list" in e for e in errs)


# --- endpointPicker.plugins ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "plugins",
    [{}, {"prefixCacheScorer": {"enabled": False}}, {"queueScorer": {"enabled": False, "weight": 2}}],
    ids=["empty", "one-disabled", "disabled-with-weight"],
)
def test_endpoint_picker_plugins_need_one_enabled(plugins: dict[str, Any]) -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPicker={"plugins": plugins}).worker().obj(),
        "spec.roles[0].endpointPicker.plugins: Required value: enable at least one scorer",
    )


def test_endpoint_picker_plugins_with_one_enabled_are_valid() -> None:
    plugins = {"prefixCacheScorer": {"weight": 3}, "queueScorer": {"enabled": False}}
    assert_valid(InferenceServiceWrapper().router(endpointPicker={"plugins": plugins}).worker().obj())


def test_endpoint_picker_plugins_and_config_are_exclusive() -> None:
    obj = (
        InferenceServiceWrapper()
        .router(endpointPickerConfig=EPP_HEADER, endpointPicker={"plugins": {"queueScorer": {}}})
        .worker()
        .obj()
    )
    assert_error(
        obj,
        "spec.roles[0].endpointPicker.plugins: Forbidden: may not be combined with endpointPickerConfig, which "
        "replaces the whole config",
    )


def test_scorer_weight_must_be_positive() -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPicker={"plugins": {"queueScorer": {"weight": 0}}}).worker().obj(),
        "spec.roles[0].endpointPicker.plugins.queueScorer.weight: Invalid value: 0: must be > 0.0",
    )


# --- httproute -------------------------------------------------------------------------------------
ROUTE = "spec.roles[0].httproute"


def test_httproute_full_fragment_is_valid() -> None:
    route = {
        "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "http"}],
        "hostnames": ["llm.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}], "timeouts": {"request": "300s"}}],
    }
    assert_valid(InferenceServiceWrapper().router(httproute=route).worker().obj())


@pytest.mark.parametrize("key", ["hostnames", "rules"])
def test_httproute_lists_must_be_lists(key: str) -> None:
    assert_error(
        InferenceServiceWrapper().router(httproute={key: "x"}).worker().obj(),
        f"{ROUTE}.{key}: Invalid value: must be a list",
    )


def test_httproute_parent_refs_must_be_a_list() -> None:
    assert f"{ROUTE}.parentRefs: Invalid value: must be a list" in errors(
        InferenceServiceWrapper().router(httproute={"parentRefs": "x"}).worker().obj()
    )


@pytest.mark.parametrize("refs", ["gw", 5, {"name": "gw"}])
def test_httproute_parent_refs_not_a_list_gives_exactly_one_error(refs: Any) -> None:
    assert errors(InferenceServiceWrapper().router(httproute={"parentRefs": refs}).worker().obj()) == [
        f"{ROUTE}.parentRefs: Invalid value: must be a list"
    ]


@pytest.mark.parametrize("ref", [{}, {"namespace": "x"}, {"name": ""}, "gw"])
def test_httproute_parent_ref_needs_a_name(ref: Any) -> None:
    assert_error(
        InferenceServiceWrapper().router(httproute={"parentRefs": [{"name": "ok"}, ref]}).worker().obj(),
        f"{ROUTE}.parentRefs[1].name: Required value",
    )


def test_httproute_rule_must_be_an_object() -> None:
    assert_error(
        InferenceServiceWrapper().router(httproute={"rules": [{}, "x"]}).worker().obj(),
        f"{ROUTE}.rules[1]: Invalid value: must be an object",
    )


def test_httproute_backend_refs_are_forbidden() -> None:
    assert_error(
        InferenceServiceWrapper().router(httproute={"rules": [{"backendRefs": [{"name": "mine"}]}]}).worker().obj(),
        f"{ROUTE}.rules[0].backendRefs: Forbidden: the backend is the service's InferencePool and is set by the "
        "operator",
    )


# --- scheduling ------------------------------------------------------------------------------------
def test_gang_scheduling_enabled_needs_volcano() -> None:
    obj = (
        InferenceServiceWrapper()
        .worker()
        .spec(schedulingStrategy={"schedulerName": "default-scheduler", "gangScheduling": "Enabled"})
        .obj()
    )
    assert_error(
        obj,
        'spec.schedulingStrategy.gangScheduling: Invalid value: "Enabled": gang scheduling needs schedulerName '
        '"volcano", not "default-scheduler"',
    )


@pytest.mark.parametrize(
    "strategy",
    [
        {"schedulerName": "volcano", "gangScheduling": "Enabled"},
        {"gangScheduling": "Enabled"},
        {"schedulerName": "default-scheduler", "gangScheduling": "Disabled"},
        {"schedulerName": "volcano", "queue": "q", "priorityClassName": "high"},
    ],
)
def test_scheduling_strategies_that_are_valid(strategy: dict[str, Any]) -> None:
    assert_valid(InferenceServiceWrapper().worker().spec(schedulingStrategy=strategy).obj())


def test_gang_scheduling_value_is_an_enum() -> None:
    assert_error(
        InferenceServiceWrapper().worker().spec(schedulingStrategy={"gangScheduling": "enabled"}).obj(),
        'spec.schedulingStrategy.gangScheduling: Unsupported value: "enabled": supported values: "Auto", '
        '"Enabled", "Disabled"',
    )


# --- malformed documents ---------------------------------------------------------------------------
@pytest.mark.parametrize(("obj", "kind"), [([], "list"), ("text", "str"), (None, "NoneType"), (3, "int")])
def test_non_mapping_document(obj: Any, kind: str) -> None:
    assert_error(obj, f"an InferenceService must be a mapping, got {kind}")


def test_wrong_api_version() -> None:
    obj = InferenceServiceWrapper().worker().obj()
    obj["apiVersion"] = "fusioninfer.io/v1"
    assert_error(obj, 'apiVersion: Unsupported value: "fusioninfer.io/v1": expected "fusioninfer.io/v1alpha1"')


def test_wrong_kind() -> None:
    obj = InferenceServiceWrapper().worker().obj()
    obj["kind"] = "Deployment"
    assert_error(obj, 'kind: Unsupported value: "Deployment": expected "InferenceService"')


def test_wrong_api_version_and_kind_are_both_reported() -> None:
    assert len(errors({"metadata": {"name": "x"}})) == 2


def test_missing_api_version_says_required_value() -> None:
    obj = InferenceServiceWrapper().worker().obj()
    del obj["apiVersion"]
    assert_error(obj, "apiVersion: Required value")


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ((), "extra"),
        (("spec",), "spec.extra"),
        (("spec", "roles", 0), "spec.roles[0].extra"),
        (("spec", "roles", 0, "template"), "spec.roles[0].template.extra"),
        (("spec", "roles", 0, "multinode"), "spec.roles[0].multinode.extra"),
    ],
)
def test_unknown_fields_are_reported_with_their_path(where: tuple[Any, ...], path: str) -> None:
    obj = InferenceServiceWrapper().worker(multinode={"nodeCount": 1}).obj()
    node: Any = obj
    for key in where:
        node = node[key]
    node["extra"] = 1
    assert_error(obj, f"{path}: unknown field")


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ({**serving_role("inference", "worker"), "role_replicas": 2}, "spec.roles[0].role_replicas"),
        (serving_role("inference", "worker", multinode={"node_count": 2}), "spec.roles[0].multinode.node_count"),
    ],
    ids=["role_replicas", "node_count"],
)
def test_snake_case_field_names_are_unknown_fields(role: dict[str, Any], path: str) -> None:
    assert f"{path}: unknown field" in errors(InferenceServiceWrapper().role(role).obj())


def test_unknown_fields_in_metadata_and_pod_spec_are_kept() -> None:
    obj = InferenceServiceWrapper().worker().obj()
    obj["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    obj["spec"]["roles"][0]["template"]["spec"]["nodeSelector"] = {"gpu": "a100"}
    isvc = assert_valid(obj)
    assert isvc.roles[0].template is not None
    assert isvc.roles[0].template.spec == {"containers": [engine_container()], "nodeSelector": {"gpu": "a100"}}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("replicas", "abc", 'Invalid value: "abc": must be an integer'),
        ("replicas", 1.5, "Invalid value: 1.5: must be an integer"),
        ("replicas", [1], "Invalid value: [1]: must be an integer"),
        ("name", 5, "Invalid value: 5: must be a string"),
        ("multinode", 2, "Invalid value: 2: must be an object"),
        ("template", [], "Invalid value: []: must be an object"),
        (
            "componentType",
            "boss",
            'Unsupported value: "boss": supported values: "worker", "prefiller", "decoder", "router"',
        ),
        ("engine", "tgi", 'Unsupported value: "tgi": supported values: "auto", "vllm", "sglang"'),
    ],
)
def test_wrong_types_are_clear_errors(field: str, value: Any, message: str) -> None:
    role = serving_role("inference", "worker")
    role[field] = value
    assert_error(InferenceServiceWrapper().role(role).obj(), f"spec.roles[0].{field}: {message}")


@pytest.mark.parametrize("value", ["3", True, 2.0], ids=["string", "bool", "float"])
def test_replicas_of_another_json_type_is_rejected_like_the_crd_does(value: Any) -> None:
    errs = errors(InferenceServiceWrapper().worker(replicas=value).obj())
    assert len(errs) == 1
    assert errs[0].startswith("spec.roles[0].replicas: Invalid value: ")


def test_component_type_is_required() -> None:
    role = serving_role("inference", "worker")
    del role["componentType"]
    assert_error(InferenceServiceWrapper().role(role).obj(), "spec.roles[0].componentType: Required value")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "spec.roles: Required value"),
        ({"roles": []}, "spec.roles: Required value: must have at least 1 item(s)"),
        ({"roles": {}}, "spec.roles: Invalid value: {}: must be a list"),
        ({"roles": None}, "spec.roles: Invalid value: null: must be a list"),
        ({"roles": ["worker"]}, 'spec.roles[0]: Invalid value: "worker": must be an object'),
    ],
)
def test_roles_shape(spec: dict[str, Any], message: str) -> None:
    obj = InferenceServiceWrapper().obj()
    obj["spec"] = spec
    assert_error(obj, message)


def test_too_many_roles() -> None:
    obj = InferenceServiceWrapper().worker().roles(*(router_role(name=f"r{i}") for i in range(16))).obj()
    assert_error(obj, "spec.roles: Too many: 17: must have at most 16 items")


@pytest.mark.parametrize(
    ("key", "message"), [("spec", "spec: Required value"), ("metadata", "metadata: Required value")]
)
def test_missing_top_level_sections(key: str, message: str) -> None:
    obj = InferenceServiceWrapper().worker().obj()
    del obj[key]
    assert_error(obj, message)


def test_schema_errors_come_before_semantic_rules() -> None:
    # Two workers would break the topology rule; the type error alone is reported (the shape is wrong).
    assert_error(
        InferenceServiceWrapper().worker("a", replicas="x").worker("b").obj(),
        'spec.roles[0].replicas: Invalid value: "x": must be an integer',
    )


def test_every_semantic_error_is_reported_sorted_by_path() -> None:
    roles = (
        [router_role(name="r")]
        + [serving_role(f"p{i}", "prefiller") for i in range(1, 10)]
        + [serving_role("d", "decoder")]
    )
    roles[2]["replicas"] = 1
    roles[2]["roleReplicas"] = 1
    roles[10]["replicas"] = 1
    roles[10]["roleReplicas"] = 1
    obj = (
        InferenceServiceWrapper()
        .roles(*roles)
        .spec(schedulingStrategy={"schedulerName": "x", "gangScheduling": "Enabled"})
        .obj()
    )
    obj["metadata"]["name"] = "Bad"
    got = errors(obj)
    assert [e.split(":")[0] for e in got] == [
        "metadata.name",
        "spec.roles[2].roleReplicas",
        "spec.roles[10].roleReplicas",
        "spec.schedulingStrategy.gangScheduling",
    ]


def test_invalid_spec_errors_are_deduplicated() -> None:
    exc = InvalidSpec([FieldError("a", "m"), FieldError("a", "m"), FieldError("", "top")])
    assert exc.errors == [FieldError("", "top"), FieldError("a", "m")]
    assert str(exc) == "top; a: m"


# --- consistency of messages -----------------------------------------------------------------------
def test_map_key_paths_use_brackets_like_the_semantic_rules() -> None:
    assert_error(
        InferenceServiceWrapper().worker(pod_labels={"app.kubernetes.io/name": 1}).obj(),
        "spec.roles[0].template.metadata.labels[app.kubernetes.io/name]: Invalid value: 1: must be a string",
    )


@pytest.mark.parametrize(
    "obj",
    [
        InferenceServiceWrapper().worker("Bad").obj(),
        InferenceServiceWrapper().router(name="a").worker("a").obj(),
        InferenceServiceWrapper().worker(rollout={"maxSurge": "101%"}).obj(),
        InferenceServiceWrapper()
        .worker("w", containers=[engine_container(name="c"), engine_container(name="c")])
        .obj(),
        InferenceServiceWrapper()
        .worker()
        .spec(schedulingStrategy={"schedulerName": "default", "gangScheduling": "Enabled"})
        .obj(),
    ],
    ids=["role-name", "duplicate-role", "rollout-percent", "duplicate-container", "gang"],
)
def test_values_are_json_quoted(obj: dict[str, Any]) -> None:
    for message in errors(obj):
        assert "'" not in message.replace("'-'", ""), message


def test_parse_does_not_mutate_its_input() -> None:
    obj = InferenceServiceWrapper().router().worker(rollout={"maxSurge": 1}).obj()
    before = copy.deepcopy(obj)
    parse(obj)
    assert obj == before


# --- shapes a builder would trip over are refused by parse(), with the field -----------------------
# These used to pass whether parse() refused the spec or accepted it and build() rendered it; the
# behaviour is the refusal (a malformed value reaching the builders is how they crashed), so that
# is what they assert: InvalidSpec, at the field, saying why.
@pytest.mark.parametrize("multinode", [False, True], ids=["with-router", "multinode"])
def test_non_integer_container_port_is_rejected_not_a_crash(multinode: bool) -> None:
    port = engine_container(ports=[{"containerPort": "http"}])
    if multinode:
        obj = InferenceServiceWrapper().worker("w", container=port, multinode={"nodeCount": 2}).obj()
    else:  # the router after the worker, so the path is spec.roles[0] in both
        obj = InferenceServiceWrapper().worker("w", container=port).role(router_role()).obj()
    assert_error(
        obj,
        'spec.roles[0].template.spec.containers[0].ports[0].containerPort: Invalid value: "http": must be an integer',
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"matches": "x"}, "spec.roles[0].httproute.rules[0].matches: Invalid value: must be a list"),
        ({"matches": ["x"]}, "spec.roles[0].httproute.rules[0].matches[0]: Invalid value: must be an object"),
        ({"timeouts": "x"}, "spec.roles[0].httproute.rules[0].timeouts: Invalid value: must be an object"),
    ],
)
def test_malformed_httproute_rule_is_rejected_not_a_crash(rule: dict[str, Any], expected: str) -> None:
    assert_error(InferenceServiceWrapper().router(httproute={"rules": [rule]}).worker().obj(), expected)


# --- shapes the builders read ----------------------------------------------------------------------
PORTS = "spec.roles[0].template.spec.containers[0].ports"


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ("http", f"{PORTS}: Invalid value: must be a list"),
        (["http"], f"{PORTS}[0]: Invalid value: must be an object"),
        ([{"name": "http"}], f"{PORTS}[0].containerPort: Required value"),
        ([{"containerPort": "8000"}], f'{PORTS}[0].containerPort: Invalid value: "8000": must be an integer'),
        ([{"containerPort": True}], f"{PORTS}[0].containerPort: Invalid value: true: must be an integer"),
        ([{"containerPort": 0}], f"{PORTS}[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"),
        (
            [{"containerPort": 65536}],
            f"{PORTS}[0].containerPort: Invalid value: 65536: must be between 1 and 65535, inclusive",
        ),
    ],
)
def test_container_ports_must_be_valid(ports: Any, expected: str) -> None:
    assert_error(InferenceServiceWrapper().worker("w", container=engine_container(ports=ports)).obj(), expected)


def test_container_port_bounds_are_valid() -> None:
    assert_valid(
        InferenceServiceWrapper()
        .worker("w", container=engine_container(ports=[{"containerPort": 1}, {"containerPort": 65535}]))
        .obj()
    )


def test_backend_request_longer_than_a_disabled_request_timeout_is_fine() -> None:
    """`request: 0s` means no timeout (the CRD's rule exempts it); the builder warns instead."""
    assert_valid(
        InferenceServiceWrapper()
        .router(httproute={"rules": [{"timeouts": {"request": "0s", "backendRequest": "2m"}}]})
        .worker()
        .obj()
    )


def test_httproute_hostnames_must_be_strings() -> None:
    assert_error(
        InferenceServiceWrapper().router(httproute={"hostnames": ["ok", 5]}).worker().obj(),
        f"{ROUTE}.hostnames[1]: Invalid value: 5: must be a string",
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"matches": "x"}, f"{ROUTE}.rules[0].matches: Invalid value: must be a list"),
        ({"matches": ["x"]}, f"{ROUTE}.rules[0].matches[0]: Invalid value: must be an object"),
        ({"matches": [{"path": "/v1"}]}, f"{ROUTE}.rules[0].matches[0].path: Invalid value: must be an object"),
        ({"timeouts": "x"}, f"{ROUTE}.rules[0].timeouts: Invalid value: must be an object"),
        (
            {"timeouts": {"request": 300}},
            f'{ROUTE}.rules[0].timeouts.request: Invalid value: 300: must be a duration string such as "300s"',
        ),
        (
            {"timeouts": {"request": "5 minutes"}},
            f'{ROUTE}.rules[0].timeouts.request: Invalid value: "5 minutes": must be a duration string such as "300s"',
        ),
        (
            {"timeouts": {"request": "60s", "backendRequest": "2m"}},
            f'{ROUTE}.rules[0].timeouts.backendRequest: Invalid value: "2m": may not be longer than '
            f'timeouts.request ("60s")',
        ),
    ],
)
def test_httproute_rule_shapes_have_exact_messages(rule: dict[str, Any], expected: str) -> None:
    assert_error(InferenceServiceWrapper().router(httproute={"rules": [rule]}).worker().obj(), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schedulingProfiles: 5\n", "schedulingProfiles must be a list"),
        ("schedulingProfiles: [x]\n", "schedulingProfiles[0] must be a mapping"),
        ("schedulingProfiles: [{plugins: 3}]\n", "schedulingProfiles[0].plugins must be a list"),
    ],
)
def test_endpoint_picker_config_profiles_shape(text: str, expected: str) -> None:
    assert_error(
        InferenceServiceWrapper().router(endpointPickerConfig=EPP_HEADER + text).worker().obj(),
        f"{EPP_PATH}: Invalid value: {expected}",
    )


def test_booleans_are_strict() -> None:
    assert_error(
        InferenceServiceWrapper().worker(multinode={"nodeCount": 2, "rewriteCommand": "false"}).obj(),
        'spec.roles[0].multinode.rewriteCommand: Invalid value: "false": must be a boolean',
    )


def test_map_keys_that_look_like_type_names_keep_their_path() -> None:
    assert_error(
        InferenceServiceWrapper().worker(pod_annotations={"int": 1}).obj(),
        "spec.roles[0].template.metadata.annotations[int]: Invalid value: 1: must be a string",
    )


def test_deeply_nested_values_are_an_error_not_a_crash() -> None:
    deep: Any = "leaf"
    for _ in range(20000):
        deep = [deep]
    obj = InferenceServiceWrapper().worker().obj()
    obj["status"] = {"conditions": deep}
    assert errors(obj)
