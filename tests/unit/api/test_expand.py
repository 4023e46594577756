"""Say the model, not the container: the serving fields expand into the serving container."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build


def serving(doc: dict[str, Any], role: int = 0) -> dict[str, Any]:
    template = parse(doc).spec.roles[role].template
    assert template is not None
    assert template.spec is not None
    container: dict[str, Any] = template.spec["containers"][0]
    return container


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        parse(doc)
    return [str(e) for e in caught.value.errors]


WORKER = {"name": "inference", "componentType": "worker"}


def test_a_model_alone_gets_the_pinned_engine_container() -> None:
    container = serving(InferenceServiceWrapper().namespace("ns").role(WORKER).model(name="Qwen/Qwen3-8B").obj())
    assert container == {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "command": ["vllm", "serve"],
        "args": ["--model", "Qwen/Qwen3-8B"],
    }
    sglang = serving(
        InferenceServiceWrapper().namespace("ns").role({**WORKER, "engine": "sglang"}).model(name="Qwen/Qwen3-8B").obj()
    )
    assert sglang["image"] == "lmsysorg/sglang:v0.5.3"
    assert sglang["command"] == ["python3", "-m", "sglang.launch_server"]
    assert sglang["args"] == ["--model-path", "Qwen/Qwen3-8B"]


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ("vllm", ["--model", "m", "--served-model-name", "mm", "--enable-lora", "--max-loras", "2",
                  "--lora-modules", "sql=org/sql", "chat=/adapters/chat"]),
        ("sglang", ["--model-path", "m", "--served-model-name", "mm", "--enable-lora",
                    "--lora-paths", "sql=org/sql", "chat=/adapters/chat"]),
    ],
)  # fmt: skip
def test_model_fields_per_engine(engine: str, expected: list[str]) -> None:
    model = {
        "name": "m",
        "servedName": "mm",
        "tokenSecretRef": {"name": "hf"},
        "loraAdapters": [{"name": "sql", "source": "org/sql"}, {"name": "chat", "source": "/adapters/chat"}],
    }
    container = serving(
        InferenceServiceWrapper().namespace("ns").role({**WORKER, "engine": engine}).model(**model).obj()
    )
    assert container["args"] == expected
    assert container["env"] == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]


def test_a_roles_model_overrides_the_services_field_by_field() -> None:
    prefill = {"name": "p", "componentType": "prefiller", "model": {"servedName": "fast"}}
    decode = {"name": "d", "componentType": "decoder"}
    doc = (
        InferenceServiceWrapper()
        .namespace("ns")
        .roles(prefill, decode)
        .model(name="Qwen/Qwen3-8B", servedName="qwen")
        .obj()
    )
    assert serving(doc, 0)["args"] == ["--model", "Qwen/Qwen3-8B", "--served-model-name", "fast"]
    assert serving(doc, 1)["args"] == ["--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen"]


def test_engine_args_speculative_decoding_and_resources() -> None:
    role = {
        **WORKER,
        "engineArgs": {"tensor-parallel-size": 4, "gpu-memory-utilization": 0.9, "enable-prefix-caching": True,
                       "enforce-eager": False},
        "speculativeDecoding": {"draftModel": "Qwen/Qwen3-0.6B", "numSpeculativeTokens": 4},
        "resources": {"limits": {"nvidia.com/gpu": "4"}},
    }  # fmt: skip
    container = serving(InferenceServiceWrapper().namespace("ns").role(role).model(name="Qwen/Qwen3-8B").obj())
    assert container["args"] == [
        "--model", "Qwen/Qwen3-8B",
        "--tensor-parallel-size", "4", "--gpu-memory-utilization", "0.9", "--enable-prefix-caching",
        "--no-enforce-eager",
        "--speculative-config", '{"method":"draft_model","num_speculative_tokens":4,"model":"Qwen/Qwen3-0.6B"}',
    ]  # fmt: skip
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "4"}}
    sglang = serving(
        InferenceServiceWrapper()
        .namespace("ns")
        .role({**role, "engine": "sglang", "engineArgs": {"enforce-eager": False}})
        .model(name="m")
        .obj()
    )
    assert sglang["args"] == [
        "--model-path", "m",
        "--speculative-algorithm", "STANDALONE", "--speculative-draft-model-path", "Qwen/Qwen3-0.6B",
        "--speculative-num-steps", "4", "--speculative-eagle-topk", "1", "--speculative-num-draft-tokens", "5",
    ]  # fmt: skip


def test_fields_merge_into_a_template_and_what_it_already_says_is_kept_once() -> None:
    template = {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                         "args": ["--model", "m", "--max-num-seqs", "64"]}]}}  # fmt: skip
    role = {**WORKER, "template": template, "engineArgs": {"max-num-seqs": 64, "tensor-parallel-size": 1}}
    container = serving(InferenceServiceWrapper().namespace("ns").role(role).model(name="m").obj())
    assert container["args"] == ["--model", "m", "--max-num-seqs", "64", "--tensor-parallel-size", "1"]


def test_a_contradiction_names_both_places() -> None:
    template = {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                         "args": ["--model", "other", "--max-num-seqs=8"]}]}}  # fmt: skip
    role = {**WORKER, "template": template, "engineArgs": {"max-num-seqs": 64}}
    found = errors(InferenceServiceWrapper().namespace("ns").role(role).model(name="Qwen/Qwen3-8B").obj())
    assert any(
        e.startswith("spec.model.name: Invalid value: '--model Qwen/Qwen3-8B' contradicts "
                     "spec.roles[0].template.spec.containers[0].args, which says '--model other'")
        for e in found
    ), found  # fmt: skip
    assert any(e.startswith("spec.roles[0].engineArgs[max-num-seqs]: Invalid value") for e in found), found


def test_a_shell_script_cannot_take_fields() -> None:
    template = {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                         "command": ["sh", "-c", "vllm serve m"]}]}}  # fmt: skip
    (error,) = errors(
        InferenceServiceWrapper()
        .namespace("ns")
        .role({**WORKER, "template": template, "engineArgs": {"max-num-seqs": 8}})
        .obj()
    )
    assert error.startswith("spec.roles[0].engineArgs[max-num-seqs]: Forbidden: ")
    assert "shell script" in error


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ({"speculativeDecoding": {"method": "draft_model"}}, "speculativeDecoding.draftModel: Required value"),
        ({"engine": "sglang", "speculativeDecoding": {"method": "medusa", "draftModel": "d"}}, "on SGLang"),
        ({"speculativeDecoding": {"method": "lookahead"}}, "on vLLM 0.11"),
        ({"engineArgs": {"Bad_Key": 1}}, "engineArgs"),
    ],
)
def test_bad_fields_are_refused_with_their_path(role: dict[str, Any], message: str) -> None:
    assert any(
        message in e
        for e in errors(InferenceServiceWrapper().namespace("ns").role({**WORKER, **role}).model(name="m").obj())
    )


def test_fields_on_the_router_are_refused() -> None:
    router = {"name": "router", "componentType": "router", "model": {"name": "m"}}
    assert any(
        "not allowed on a router role" in e or "spec.roles[0]" in e
        for e in errors(InferenceServiceWrapper().namespace("ns").roles(router, WORKER).obj())
    )


@pytest.mark.parametrize(
    ("args", "gpus", "nodes", "ok"),
    [
        ({"tensor-parallel-size": 32}, "8", 4, True),
        ({"tensor-parallel-size": 16}, "8", 4, False),
        ({"tensor-parallel-size": 8, "pipeline-parallel-size": 4}, "8", 4, True),
        ({"tensor-parallel-size": 2}, "4", 1, False),
        ({"tensor-parallel-size": 4}, "4", 1, True),
    ],
)
def test_parallelism_must_use_exactly_the_gpus_of_a_replica(
    args: dict[str, Any], gpus: str, nodes: int, ok: bool
) -> None:
    role = {**WORKER, "engineArgs": args, "resources": {"limits": {"nvidia.com/gpu": gpus}}}
    if nodes > 1:
        role["multinode"] = {"nodeCount": nodes}
    doc = InferenceServiceWrapper().namespace("ns").role(role).model(name="m").obj()
    if ok:
        parse(doc)
        return
    (error,) = errors(doc)
    assert error.startswith("spec.roles[0].engineArgs[tensor-parallel-size]: Invalid value: tensor-parallel")
    assert f"{int(gpus) * nodes} GPUs" in error


# --- the fields and the raw template render the same serving command -------------------------
ENGINE_ARGS = st.dictionaries(
    st.sampled_from(["max-num-seqs", "max-model-len", "enable-prefix-caching", "gpu-memory-utilization"]),
    st.one_of(st.integers(1, 4096), st.booleans(), st.sampled_from([0.5, 0.9])),
    max_size=3,
)
MODELS = st.fixed_dictionaries(
    {"name": st.sampled_from(["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B-Instruct"])},
    optional={
        "servedName": st.sampled_from(["qwen", "llama"]),
        "tokenSecretRef": st.just({"name": "hf-token"}),
        "loraAdapters": st.just([{"name": "sql-lora", "source": "org/sql-lora"}]),
    },
)


@settings(max_examples=80, deadline=None)
@given(
    engine=st.sampled_from(["vllm", "sglang"]),
    model=MODELS,
    engine_args=ENGINE_ARGS,
    speculative=st.one_of(st.none(), st.just({"method": "eagle", "draftModel": "org/eagle"})),
    routed=st.booleans(),
)
def test_the_fields_render_what_the_same_service_written_as_a_template_renders(
    engine: str, model: dict[str, Any], engine_args: dict[str, Any], speculative: Any, routed: bool
) -> None:
    role: dict[str, Any] = {**WORKER, "engine": engine, "engineArgs": engine_args,
                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}  # fmt: skip
    if speculative:
        role["speculativeDecoding"] = speculative
    router = [{"name": "router", "componentType": "router", "httproute": {"parentRefs": [{"name": "gw"}]}}]
    fields_doc = InferenceServiceWrapper().namespace("ns").roles(*(router if routed else []), role).model(**model).obj()
    container = serving(fields_doc, 1 if routed else 0)
    raw_role = {"name": "inference", "componentType": "worker", "engine": engine,
                "template": {"spec": {"containers": [copy.deepcopy(container)]}}}  # fmt: skip
    raw_doc = InferenceServiceWrapper().namespace("ns").roles(*(router if routed else []), raw_role).obj()

    def rendered(doc: dict[str, Any]) -> list[dict[str, Any]]:
        objects = build(parse(doc), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
        return [o for o in objects if o["kind"] in ("Deployment", "ConfigMap", "InferencePool")]

    assert rendered(fields_doc) == rendered(raw_doc)
