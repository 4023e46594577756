"""vLLM's mp backend across nodes is refused on releases that lack it (api/engine_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse

# The engine container of a worker of two nodes per replica, unless a test says otherwise.
TP8 = ["--model", "m", "--tensor-parallel-size", "8"]


def errors(service: InferenceServiceWrapper) -> list[str]:
    try:
        parse(service.obj())
    except InvalidSpec as exc:
        return [str(e) for e in exc.errors]
    return []


def test_mp_on_vllm_0_11_0_is_refused_at_the_backend_field_with_the_way_out() -> None:
    (error,) = errors(
        InferenceServiceWrapper().worker(
            image="vllm/vllm-openai:v0.11.0", args=TP8, multinode={"nodeCount": 2, "backend": "mp"}
        )
    )
    assert error.startswith("spec.roles[0].multinode.backend: Invalid value: vLLM 0.11.0")
    assert "--nnodes" in error
    assert "0.11.1" in error
    assert "multinode.backend: ray" in error


def test_mp_asked_for_on_the_command_line_is_refused_there() -> None:
    args = ["--model", "m", "--distributed-executor-backend", "mp"]
    (error,) = errors(
        InferenceServiceWrapper().worker(image="vllm/vllm-openai:v0.11.0", args=args, multinode={"nodeCount": 2})
    )
    assert error.startswith("spec.roles[0].template.spec.containers[0].args: Invalid value: vLLM 0.11.0")
    own = ["--model", "m", "--nnodes", "2", "--node-rank", "0"]
    assert errors(
        InferenceServiceWrapper().worker(
            image="vllm/vllm-openai:v0.11.0", args=own, multinode={"nodeCount": 2, "rewriteCommand": False}
        )
    )


@pytest.mark.parametrize(
    ("image", "spec"),
    [
        ("vllm/vllm-openai:v0.11.1", {"backend": "mp"}),
        ("vllm/vllm-openai:v0.12.0", {"backend": "mp"}),
        ("vllm/vllm-openai:latest", {"backend": "mp"}),
        ("vllm/vllm-openai:v0.11.0", {"backend": "ray"}),
        ("vllm/vllm-openai:v0.11.0", {}),
        ("ghcr.io/llm-d/llm-d-inference-sim:v0.5.1", {"backend": "mp"}),
    ],
)
def test_what_the_engine_has_is_accepted(image: str, spec: dict[str, Any]) -> None:
    assert errors(InferenceServiceWrapper().worker(image=image, args=TP8, multinode={"nodeCount": 2, **spec})) == []
