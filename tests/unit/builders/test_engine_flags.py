"""What a routed service needs from its engines' command lines (builders/engine_flags.py)."""

from __future__ import annotations

from typing import Any

from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, BuildResult, Capabilities, build

SGLANG = {"name": "sglang", "image": "lmsysorg/sglang:v0.5.3", "command": ["python3", "-m", "sglang.launch_server"]}


def routed() -> InferenceServiceWrapper:
    """`svc` in `ns` behind a router with no strategy (the tests add the serving roles)."""
    return InferenceServiceWrapper().namespace("ns").router()


def render(doc: dict[str, Any]) -> BuildResult:
    return build(parse(doc), BuildOptions(capabilities=Capabilities(server_version=(1, 33))))


def engine(result: BuildResult, deployment: str) -> dict[str, Any]:
    (obj,) = [o for o in result.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment]
    container: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return container


def test_a_routed_sglang_server_gets_its_metrics_endpoint() -> None:
    sglang = {**SGLANG, "args": ["--model-path", "m"]}
    result = render(routed().worker(container=sglang).obj())
    assert "--enable-metrics" in engine(result, "svc-inference")["args"]
    unrouted = render(InferenceServiceWrapper().namespace("ns").worker(container=sglang).obj())
    assert "--enable-metrics" not in engine(unrouted, "svc-inference")["args"], "no picker, no need"
    kept = render(routed().worker(container={**SGLANG, "args": ["--model-path", "m", "--enable-metrics"]}).obj())
    assert engine(kept, "svc-inference")["args"].count("--enable-metrics") == 1


def test_a_script_without_metrics_is_reported_not_edited() -> None:
    script = {"name": "sglang", "image": "lmsysorg/sglang:v0.5.3",
              "command": ["sh", "-c", "python3 -m sglang.launch_server --model-path m --host 0.0.0.0"]}  # fmt: skip
    result = render(routed().worker(container=script).obj())
    assert engine(result, "svc-inference")["command"] == script["command"]
    (notice,) = [n for n in result.notices if n.reason == "MetricsDisabled"]
    assert notice.condition == "SpecWarnings"
    assert "--enable-metrics" in notice.message


def vllm(*args: str) -> dict[str, Any]:
    return {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": list(args)}


def test_roles_that_answer_to_different_model_names_are_reported() -> None:
    doc = (
        routed()
        .prefiller(container=vllm("--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen"))
        .decoder(container=vllm("--model", "Qwen/Qwen3-8B"))
        .obj()
    )
    (notice,) = [n for n in render(doc).notices if n.reason == "ServedModelNameMismatch"]
    assert "prefill serves qwen" in notice.message
    assert "decode serves Qwen/Qwen3-8B" in notice.message
    same = (
        routed()
        .prefiller(container=vllm("--model", "Qwen/Qwen3-8B", "--served-model-name", "qwen", "q"))
        .decoder(container=vllm("--model", "other", "--served-model-name", "q", "qwen"))
        .obj()
    )
    assert not [n for n in render(same).notices if n.reason == "ServedModelNameMismatch"]


def test_the_pool_targets_the_port_a_shell_script_listens_on() -> None:
    """Issue 13: `sh -c "vllm serve m --port 9000"` made the InferencePool target 8000."""
    script = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "command": ["sh", "-c", "vllm serve m --port 9000"]}
    result = render(routed().worker(container=script).obj())
    (pool,) = [o for o in result.objects if o["kind"] == "InferencePool"]
    assert pool["spec"]["targetPorts"] == [{"number": 9000}]
    probe = engine(result, "svc-inference")["readinessProbe"]["httpGet"]
    assert probe["port"] == 9000
