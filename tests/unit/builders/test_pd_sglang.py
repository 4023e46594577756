"""SGLang prefill/decode roles really disaggregate (builders/pd_sglang.py, api/pd_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import pd_service

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build


def sglang(args: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": "sglang",
        "image": "lmsysorg/sglang:v0.5.3",
        "command": ["python3", "-m", "sglang.launch_server"],
        "args": ["--model-path", "Qwen/Qwen3-8B", "--enable-metrics", *(args or [])],
    }


def pods(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = build(parse(doc), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] in ("svc-prefill", "svc-decode")
    }


def flag(container: dict[str, Any], name: str) -> str | None:
    args = container["args"]
    return args[args.index(name) + 1] if name in args else None


def test_prefill_and_decode_get_their_modes_one_backend_and_the_bootstrap_port() -> None:
    spec = pods(pd_service(sglang(), sglang()))
    prefill = spec["svc-prefill"]["containers"][0]
    decode = spec["svc-decode"]["containers"][0]
    assert flag(prefill, "--disaggregation-mode") == "prefill"
    assert flag(prefill, "--disaggregation-transfer-backend") == "nixl"
    assert flag(prefill, "--disaggregation-bootstrap-port") == "8998"
    assert {"name": "pd-bootstrap", "containerPort": 8998, "protocol": "TCP"} in prefill["ports"]
    assert flag(decode, "--disaggregation-mode") == "decode"
    assert flag(decode, "--disaggregation-transfer-backend") == "nixl"
    assert flag(decode, "--disaggregation-bootstrap-port") is None, "a decode server has no bootstrap"
    (sidecar,) = spec["svc-decode"]["initContainers"]
    assert "--kv-connector=sglang" in sidecar["args"]
    assert sidecar["env"] == [{"name": "SGLANG_BOOTSTRAP_PORT", "value": "8998"}]


def test_the_users_backend_and_bootstrap_port_are_kept_and_reach_the_sidecar() -> None:
    prefill = sglang(["--disaggregation-transfer-backend", "mooncake", "--disaggregation-bootstrap-port=9100"])
    spec = pods(pd_service(prefill, sglang()))
    assert spec["svc-prefill"]["containers"][0]["args"].count("--disaggregation-transfer-backend") == 1
    assert "--disaggregation-bootstrap-port" not in spec["svc-prefill"]["containers"][0]["args"]
    decode_args = spec["svc-decode"]["containers"][0]["args"]
    assert decode_args[decode_args.index("--disaggregation-transfer-backend") + 1] == "mooncake"
    assert spec["svc-decode"]["initContainers"][0]["env"] == [{"name": "SGLANG_BOOTSTRAP_PORT", "value": "9100"}]


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        parse(doc)
    return [str(e) for e in caught.value.errors]


def test_a_mode_that_contradicts_the_role_is_refused_with_its_path() -> None:
    (error,) = errors(pd_service(sglang(["--disaggregation-mode", "decode"]), sglang()))
    assert error.startswith("spec.roles[1].template.spec.containers[0].args: Invalid value: --disaggregation-mode")
    assert "must run --disaggregation-mode prefill" in error


def test_different_backends_on_the_two_ends_are_refused() -> None:
    doc = pd_service(
        sglang(["--disaggregation-transfer-backend", "nixl"]), sglang(["--disaggregation-transfer-backend=mooncake"])
    )
    (error,) = errors(doc)
    assert "mooncake on decode" in error
    assert "nixl on prefill" in error
