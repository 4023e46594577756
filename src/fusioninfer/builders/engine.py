"""Which inference engine a role runs, which container serves HTTP, and on which port.

The endpoint picker flags (metric names), the multi-node start-up commands and the
InferencePool's target port all depend on these facts, so they are derived in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fusioninfer.api.v1alpha1 import Engine, Role

DEFAULT_PORTS = {Engine.VLLM: 8000, Engine.SGLANG: 30000}


@dataclass(frozen=True)
class ServingContainer:
    index: int
    container: dict[str, Any]
    engine: Engine
    port: int

    @property
    def name(self) -> str:
        return str(self.container.get("name", ""))


def _words(container: dict[str, Any]) -> str:
    parts = [str(container.get("image", ""))]
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
    return " ".join(parts).lower()


def detect_engine(container: dict[str, Any]) -> Engine | None:
    """The engine a container runs, judged by its image and command; None when unknown."""
    words = _words(container)
    if "sglang" in words:
        return Engine.SGLANG
    if "vllm" in words or "llm-d-inference-sim" in words:
        return Engine.VLLM
    return None


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def container_args(container: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            args.extend(str(v) for v in value)
    return args


def _port(container: dict[str, Any], engine: Engine) -> int:
    ports = [p for p in container.get("ports") or [] if isinstance(p, dict) and "containerPort" in p]
    for p in ports:
        if p.get("name") == "http":
            return int(p["containerPort"])
    if ports:
        return int(ports[0]["containerPort"])
    flag = _flag_value(container_args(container), "--port")
    if flag is not None and flag.isdigit():
        return int(flag)
    return DEFAULT_PORTS[engine]


def serving_container(role: Role) -> ServingContainer:
    """The container that serves the OpenAI-compatible API of a (validated) serving role.

    The first container whose image or command names an engine wins; otherwise the first
    container. The engine is the role's explicit `engine`, else detected, else vLLM.
    """
    assert role.template is not None
    assert role.template.spec is not None
    containers: list[dict[str, Any]] = role.template.spec["containers"]
    index = next((i for i, c in enumerate(containers) if detect_engine(c) is not None), 0)
    container = containers[index]
    explicit = role.engine if role.engine is not Engine.AUTO else None
    engine: Engine = explicit or detect_engine(container) or Engine.VLLM
    return ServingContainer(index=index, container=container, engine=engine, port=_port(container, engine))
