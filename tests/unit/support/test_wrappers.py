"""The spec builder tests share (tests/support/wrappers.py): what it builds is what a user writes.

Every other test trusts these manifests, so they must pass `parse` as they are and be exactly
the YAML a user would write (no fields the operator fills in), and `.obj()` must hand out copies.
"""

from __future__ import annotations

import pytest
from tests.support.wrappers import InferenceServiceWrapper, engine_container, pd_service, serving_role

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse


def test_a_monolithic_service_is_what_a_user_writes_and_parses() -> None:
    manifest = (
        InferenceServiceWrapper("chat")
        .namespace("team-a")
        .worker(replicas=2, image="vllm/vllm-openai:v0.11.0", args=["--model", "Qwen/Qwen3-8B"], gpus=1)
        .obj()
    )
    assert manifest == {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "chat", "namespace": "team-a"},
        "spec": {
            "roles": [
                {
                    "name": "inference",
                    "componentType": "worker",
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "vllm",
                                    "image": "vllm/vllm-openai:v0.11.0",
                                    "args": ["--model", "Qwen/Qwen3-8B"],
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                                }
                            ]
                        }
                    },
                }
            ]
        },
    }
    isvc = parse(manifest)
    assert (isvc.name, [r.name for r in isvc.roles]) == ("chat", ["inference"])


def test_the_router_goes_first_whenever_it_is_added() -> None:
    manifest = InferenceServiceWrapper().worker().router("prefix-cache", parent="inference-gateway").obj()
    assert manifest["spec"]["roles"][0] == {
        "name": "router",
        "componentType": "router",
        "strategy": "prefix-cache",
        "httproute": {"parentRefs": [{"name": "inference-gateway"}]},
    }
    assert [r.name for r in parse(manifest).roles] == ["router", "inference"]


def test_a_disaggregated_service_with_autoscaling_parses() -> None:
    manifest = (
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller()
        .decoder()
        .autoscaling("prefill", {"ratioTo": {"role": "decode", "ratio": "1:2"}})
        .autoscaling("decode", {"maxReplicas": 4, "metrics": [{"type": "Pods"}]})
        .obj()
    )
    roles = manifest["spec"]["roles"]
    assert [(r["name"], r["componentType"]) for r in roles] == [
        ("router", "router"), ("prefill", "prefiller"), ("decode", "decoder")
    ]  # fmt: skip
    assert roles[1]["autoscaling"] == {"ratioTo": {"role": "decode", "ratio": "1:2"}}
    assert parse(manifest).roles[1].name == "prefill"
    engine = roles[1]["template"]["spec"]["containers"][0]
    assert pd_service(engine, engine)["spec"]["roles"] == [
        roles[0], *({k: v for k, v in r.items() if k != "autoscaling"} for r in roles[1:])
    ]  # fmt: skip


def test_model_fields_and_raw_roles_are_written_as_given() -> None:
    raw = {"name": "inference", "componentType": "worker"}
    manifest = InferenceServiceWrapper().namespace("ns").role(raw).model(name="Qwen/Qwen3-8B", servedName="q").obj()
    assert manifest["spec"] == {"roles": [raw], "model": {"name": "Qwen/Qwen3-8B", "servedName": "q"}}
    container = parse(manifest).roles[0].template
    assert container is not None
    assert container.spec is not None
    assert container.spec["containers"][0]["args"][:2] == ["--model", "Qwen/Qwen3-8B"]


def test_a_role_that_is_wrong_on_purpose_is_kept_so_parse_refuses_it() -> None:
    manifest = InferenceServiceWrapper().namespace("ns").worker().role({"name": "x", "componentType": "boss"}).obj()
    with pytest.raises(InvalidSpec) as caught:
        parse(manifest)
    assert any(e.path.startswith("spec.roles[1].componentType") for e in caught.value.errors), caught.value.errors


def test_obj_hands_out_copies_and_shares_nothing_with_its_inputs() -> None:
    shared = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "m"]}
    wrapper = InferenceServiceWrapper().namespace("ns").worker(container=shared)
    first = wrapper.obj()
    first["spec"]["roles"][0]["template"]["spec"]["containers"][0]["args"].append("--edited")
    assert wrapper.obj()["spec"]["roles"][0]["template"]["spec"]["containers"][0]["args"] == ["--model", "m"]
    assert shared["args"] == ["--model", "m"]


def test_autoscaling_names_a_role_that_exists() -> None:
    with pytest.raises(ValueError, match="not enough values"):
        InferenceServiceWrapper().worker().autoscaling("decode", {"maxReplicas": 2})


def test_args_are_written_as_given_or_left_out() -> None:
    """A test of a malformed `args` must get that value, not a list the builder made of it."""
    assert "args" not in engine_container(args=None)
    assert engine_container(args=("--model", "q"))["args"] == ["--model", "q"]
    assert engine_container(args="vllm serve")["args"] == "vllm serve"
    assert engine_container(args={"a": "b"})["args"] == {"a": "b"}
    role = serving_role("w", "worker", args=None)
    assert role["template"]["spec"]["containers"] == [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]


def test_pod_spec_fields_follow_the_containers() -> None:
    role = serving_role("w", "worker", pod_spec={"nodeSelector": {"gpu": "a100"}}, pod_labels={"team": "ml"})
    assert role["template"] == {
        "metadata": {"labels": {"team": "ml"}},
        "spec": {"containers": [engine_container()], "nodeSelector": {"gpu": "a100"}},
    }


def test_metadata_fields_are_added_to_name_and_namespace() -> None:
    manifest = InferenceServiceWrapper().namespace("ns").metadata(uid="u1", generation=3).worker().obj()
    assert manifest["metadata"] == {"name": "svc", "namespace": "ns", "uid": "u1", "generation": 3}
    assert parse(manifest).metadata.uid == "u1"
