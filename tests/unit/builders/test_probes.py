"""Serving containers are Ready only once the engine answers /health, with a model-loading budget."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.validation import parse
from fusioninfer.builders import build
from fusioninfer.builders.health import STARTUP_FAILURE_THRESHOLD

VLLM = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B"]}
SGLANG = {
    "name": "sglang",
    "image": "lmsysorg/sglang:v0.5.3",
    "command": ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--port", "30000"],
}


def pod_spec(isvc: Any, kind: str, name: str, path: tuple[str, ...] = ("template",)) -> dict[str, Any]:
    obj = next(o for o in build(isvc).objects if o["kind"] == kind and o["metadata"]["name"] == name)
    node: Any = obj["spec"]
    for step in path:
        node = node[step]
    return dict(node["spec"])


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == name)


@pytest.mark.parametrize(("engine", "port"), [(VLLM, 8000), (SGLANG, 30000)])
def test_single_node_server_gets_startup_and_readiness_on_health(engine: dict[str, Any], port: int) -> None:
    spec = pod_spec(
        parse(InferenceServiceWrapper().namespace("ns").worker(container=engine).obj()), "Deployment", "svc-inference"
    )
    serving = container(spec, engine["name"])
    for key in ("startupProbe", "readinessProbe"):
        assert serving[key]["httpGet"] == {"path": "/health", "port": port, "scheme": "HTTP"}, key
        assert serving[key]["periodSeconds"] == 10
    # 30 minutes to download and load a large model before the kubelet gives up.
    assert serving["startupProbe"]["failureThreshold"] * serving["startupProbe"]["periodSeconds"] == 1800
    assert serving["startupProbe"]["failureThreshold"] == STARTUP_FAILURE_THRESHOLD
    assert serving["readinessProbe"]["failureThreshold"] == 3
    assert "livenessProbe" not in serving


def test_the_users_own_probes_are_kept() -> None:
    own_startup = {"exec": {"command": ["true"]}, "failureThreshold": 600, "periodSeconds": 10}
    own_ready = {"httpGet": {"path": "/v1/models", "port": 9000}}
    user = {**VLLM, "startupProbe": own_startup}
    spec = pod_spec(
        parse(InferenceServiceWrapper().namespace("ns").worker(container=user).obj()), "Deployment", "svc-inference"
    )
    assert container(spec, "vllm")["startupProbe"] == own_startup
    assert container(spec, "vllm")["readinessProbe"]["httpGet"]["port"] == 8000
    user = {**VLLM, "readinessProbe": own_ready}
    spec = pod_spec(
        parse(InferenceServiceWrapper().namespace("ns").worker(container=user).obj()), "Deployment", "svc-inference"
    )
    assert container(spec, "vllm")["readinessProbe"] == own_ready
    assert container(spec, "vllm")["startupProbe"]["httpGet"]["port"] == 9000, "same server as the user's probe"


def test_pd_decode_probes_check_the_engine_behind_the_routing_sidecar() -> None:
    pd = InferenceServiceWrapper().namespace("ns").router("pd-disaggregation")
    isvc = parse(pd.prefiller(container=VLLM).decoder(container=VLLM).obj())
    decode = pod_spec(isvc, "Deployment", "svc-decode")
    engine = container(decode, "vllm")
    sidecar = next(c for c in [*decode.get("initContainers", []), *decode["containers"]] if c["name"] != "vllm")
    behind = int(next(a for a in sidecar["args"] if a.startswith("--vllm-port=")).split("=", 1)[1])
    assert behind != 8000, "the sidecar owns the pool port"
    assert "startupProbe" not in sidecar
    assert engine["startupProbe"]["httpGet"]["port"] == behind
    assert engine["readinessProbe"]["httpGet"]["port"] == behind
    prefill = container(pod_spec(isvc, "Deployment", "svc-prefill"), "vllm")
    assert prefill["readinessProbe"]["httpGet"]["port"] == 8000


def test_multinode_leader_has_both_probes_and_workers_none() -> None:
    isvc = parse(InferenceServiceWrapper().namespace("ns").worker(container=VLLM, multinode={"nodeCount": 2}).obj())
    leader = pod_spec(isvc, "LeaderWorkerSet", "svc-inference", ("leaderWorkerTemplate", "leaderTemplate"))
    worker = pod_spec(isvc, "LeaderWorkerSet", "svc-inference", ("leaderWorkerTemplate", "workerTemplate"))
    assert container(leader, "vllm")["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container(leader, "vllm")["startupProbe"]["failureThreshold"] == STARTUP_FAILURE_THRESHOLD
    assert "readinessProbe" not in container(worker, "vllm")
    assert "startupProbe" not in container(worker, "vllm")
