"""vLLM's NixlConnector needs decode tensor-parallel >= prefill's: refused with the field path."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import pd_service

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse

NIXL = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'


def vllm(*args: str, image: str = "vllm/vllm-openai:v0.11.0") -> dict[str, Any]:
    return {"name": "vllm", "image": image, "args": ["--model", "Qwen/Qwen3-8B", *args]}


def errors(obj: dict[str, Any]) -> list[str]:
    try:
        parse(obj)
    except InvalidSpec as exc:
        return [str(e) for e in exc.errors]
    return []


def test_decode_tp_smaller_than_prefill_tp_is_refused_with_the_decode_path() -> None:
    (message,) = errors(pd_service(vllm("--tensor-parallel-size", "8"), vllm("--tensor-parallel-size=4"), router=False))
    assert message == (
        "spec.roles[1].template.spec.containers[0].args: Invalid value: --tensor-parallel-size 4: smaller than "
        "prefill role prefill's 8; vLLM's NixlConnector needs decode tensor-parallel size >= prefill's (the KV "
        "handshake fails otherwise)"
    )


@pytest.mark.parametrize(
    ("prefill", "decode"),
    [
        (vllm("-tp", "4"), vllm("-tp", "4")),
        (vllm("--tensor-parallel-size", "2"), vllm("--tensor-parallel-size", "8")),
        (vllm(), vllm()),  # TP 1 both
        # Another connector: NIXL's rule does not apply.
        (
            vllm("--tensor-parallel-size", "8", "--kv-transfer-config", '{"kv_connector":"LMCacheConnectorV1"}'),
            vllm("--tensor-parallel-size", "4", "--kv-transfer-config", '{"kv_connector":"LMCacheConnectorV1"}'),
        ),
    ],
)
def test_compatible_or_other_connectors_are_valid(prefill: dict[str, Any], decode: dict[str, Any]) -> None:
    assert errors(pd_service(prefill, decode, router=False)) == []


def test_the_users_own_nixl_config_and_a_shell_script_are_read() -> None:
    prefill = vllm("--tensor-parallel-size", "8", "--kv-transfer-config", NIXL)
    decode = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "command": ["sh", "-c", f"vllm serve Qwen/Qwen3-8B --tensor-parallel-size 2 --kv-transfer-config '{NIXL}'"],
    }
    (message,) = errors(pd_service(prefill, decode, router=False))
    assert "--tensor-parallel-size 2: smaller than prefill role prefill's 8" in message


def test_sglang_roles_are_not_subject_to_the_vllm_rule() -> None:
    sglang = {
        "name": "sglang",
        "image": "lmsysorg/sglang:v0.5.3",
        "command": ["python3", "-m", "sglang.launch_server", "--model-path", "m", "--tp", "8"],
    }
    assert errors(pd_service(sglang, dict(sglang, command=[*sglang["command"][:-1], "2"]), router=False)) == []
