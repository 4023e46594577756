"""vLLM's mp backend across nodes is refused on releases that lack it (api/engine_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse


def multinode(image: str, args: list[str] | None = None, **multinode: Any) -> dict[str, Any]:
    container = {"name": "vllm", "image": image, "args": args or ["--model", "m", "--tensor-parallel-size", "8"]}
    return {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc"},
        "spec": {
            "roles": [
                {
                    "name": "inference",
                    "componentType": "worker",
                    "multinode": {"nodeCount": 2, **multinode},
                    "template": {"spec": {"containers": [container]}},
                }
            ]
        },
    }


def errors(doc: dict[str, Any]) -> list[str]:
    try:
        parse(doc)
    except InvalidSpec as exc:
        return [str(e) for e in exc.errors]
    return []


def test_mp_on_vllm_0_11_0_is_refused_at_the_backend_field_with_the_way_out() -> None:
    (error,) = errors(multinode("vllm/vllm-openai:v0.11.0", backend="mp"))
    assert error.startswith("spec.roles[0].multinode.backend: Invalid value: vLLM 0.11.0")
    assert "--nnodes" in error
    assert "0.11.1" in error
    assert "multinode.backend: ray" in error


def test_mp_asked_for_on_the_command_line_is_refused_there() -> None:
    args = ["--model", "m", "--distributed-executor-backend", "mp"]
    (error,) = errors(multinode("vllm/vllm-openai:v0.11.0", args=args))
    assert error.startswith("spec.roles[0].template.spec.containers[0].args: Invalid value: vLLM 0.11.0")
    own = ["--model", "m", "--nnodes", "2", "--node-rank", "0"]
    assert errors(multinode("vllm/vllm-openai:v0.11.0", args=own, rewriteCommand=False))


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
    assert errors(multinode(image, **spec)) == []
