"""Engine detection and the serving container/port of a role."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import serving_role

from fusioninfer.api.v1alpha1 import Engine, Role
from fusioninfer.builders.engine import DEFAULT_PORTS, argv, detect_engine, serving_container

VLLM = "vllm/vllm-openai:v0.11.0"
SGLANG = "lmsysorg/sglang:v0.5.3"


def worker(*containers: dict[str, Any], **fields: Any) -> Role:
    """The Role model of the shared builder's worker `w` running `containers`, plus `fields`."""
    return Role.model_validate(serving_role("w", "worker", containers=list(containers), **fields))


def test_default_ports() -> None:
    assert DEFAULT_PORTS == {Engine.VLLM: 8000, Engine.SGLANG: 30000}


# --- detection -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("container", "engine"),
    [
        ({"image": VLLM}, Engine.VLLM),
        ({"image": "registry.local/VLLM-custom:1"}, Engine.VLLM),
        ({"image": "ghcr.io/llm-d/llm-d-inference-sim:v0.5"}, Engine.VLLM),
        ({"image": SGLANG}, Engine.SGLANG),
        ({"image": "my/server:1", "command": ["python3", "-m", "sglang.launch_server"]}, Engine.SGLANG),
        ({"image": "my/server:1", "command": ["vllm", "serve"]}, Engine.VLLM),
        ({"image": "my/server:1", "args": ["-m", "vllm.entrypoints.openai.api_server"]}, Engine.VLLM),
        ({"image": "my/server:1", "command": ["python"], "args": ["-m", "sglang.launch_server"]}, Engine.SGLANG),
        ({"image": "nginx:1.27"}, None),
        ({}, None),
    ],
)
def test_detect_engine(container: dict[str, Any], engine: Engine | None) -> None:
    assert detect_engine(container) is engine


def test_sglang_wins_when_both_are_named() -> None:
    # An SGLang image whose args mention vllm (e.g. a model path) is still SGLang.
    assert detect_engine({"image": SGLANG, "args": ["--model-path", "/models/vllm-ft"]}) is Engine.SGLANG


def test_detection_ignores_non_list_command() -> None:
    assert detect_engine({"image": "my/server", "command": "vllm serve"}) is None


def test_container_args_joins_command_and_args() -> None:
    assert argv({"command": ["vllm", "serve"], "args": ["--port", 9000]}) == [
        "vllm",
        "serve",
        "--port",
        "9000",
    ]
    assert argv({"command": "x"}) == []


# --- the serving container -------------------------------------------------------------------------
def test_first_container_that_names_an_engine_serves() -> None:
    r = worker(
        {"name": "proxy", "image": "envoyproxy/envoy:v1"},
        {"name": "engine", "image": SGLANG},
        {"name": "other", "image": VLLM},
    )
    sc = serving_container(r)
    assert (sc.index, sc.name, sc.engine, sc.port) == (1, "engine", Engine.SGLANG, 30000)
    assert sc.container == {"name": "engine", "image": SGLANG}


def test_first_container_when_none_names_an_engine_and_vllm_by_default() -> None:
    sc = serving_container(worker({"name": "a", "image": "my/server"}, {"name": "b", "image": "busybox"}))
    assert (sc.index, sc.name, sc.engine, sc.port) == (0, "a", Engine.VLLM, 8000)


@pytest.mark.parametrize(
    ("image", "explicit", "engine", "port"),
    [
        (VLLM, "sglang", Engine.SGLANG, 30000),
        (SGLANG, "vllm", Engine.VLLM, 8000),
        ("my/server", "sglang", Engine.SGLANG, 30000),
        (SGLANG, "auto", Engine.SGLANG, 30000),
        ("my/server", "auto", Engine.VLLM, 8000),
    ],
)
def test_explicit_engine_wins_and_auto_detects(image: str, explicit: str, engine: Engine, port: int) -> None:
    sc = serving_container(worker({"name": "c", "image": image}, engine=explicit))
    assert (sc.engine, sc.port) == (engine, port)


# --- the port ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("container", "port"),
    [
        ({"ports": [{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8080}]}, 8080),
        ({"ports": [{"containerPort": 8001}, {"containerPort": 8002}]}, 8001),
        # The engine listens where its flag says, whatever the pod declares.
        ({"ports": [{"name": "x", "containerPort": 7000}], "args": ["--port", "9000"]}, 9000),
        ({"command": ["sh", "-c", "pip list && exec vllm serve m --port 9300"]}, 9300),
        ({"command": ["bash", "-ec"], "args": ["ray start --head --port=6379 && vllm serve m"]}, 8000),
        ({"args": ["--model", "m", "--port", "9000"]}, 9000),
        ({"args": ["--port=9100"]}, 9100),
        ({"command": ["vllm", "serve", "--port", "9200"]}, 9200),
        ({"args": ["--port"]}, 8000),
        ({"args": ["--port", "$(PORT)"]}, 8000),
        ({"ports": [{"name": "http"}]}, 8000),
        ({"ports": "8080"}, 8000),
        ({}, 8000),
    ],
    ids=[
        "named-http",
        "first-port",
        "flag-before-declared-port",
        "shell-script",
        "shell-script-other-command-port",
        "flag",
        "flag-equals",
        "flag-in-command",
        "flag-without-value",
        "flag-not-a-number",
        "port-without-number",
        "ports-not-a-list",
        "default",
    ],
)
def test_vllm_port(container: dict[str, Any], port: int) -> None:
    assert serving_container(worker({"name": "c", "image": VLLM, **container})).port == port


@pytest.mark.parametrize(
    ("container", "port"),
    [({}, 30000), ({"args": ["--port", "31000"]}, 31000), ({"ports": [{"containerPort": 8000}]}, 8000)],
)
def test_sglang_port(container: dict[str, Any], port: int) -> None:
    assert serving_container(worker({"name": "c", "image": SGLANG, **container})).port == port


def test_serving_container_does_not_change_the_role() -> None:
    r = worker({"name": "c", "image": VLLM, "args": ["--port", "9000"]})
    before = r.model_dump()
    serving_container(r)
    assert r.model_dump() == before
