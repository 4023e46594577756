"""Which inference engine a role runs, which container serves HTTP, and on which port.

The endpoint picker flags (metric names), the multi-node start-up commands and the
InferencePool's target port all depend on these facts, so they are derived in one place, from
the command line as `api.command` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fusioninfer.api.command import DEFAULT_PORTS, argv, detect_engine, listen_port
from fusioninfer.api.v1alpha1 import Engine, Role

__all__ = ["DEFAULT_PORTS", "ServingContainer", "argv", "detect_engine", "serving_container"]


@dataclass(frozen=True)
class ServingContainer:
    index: int
    container: dict[str, Any]
    engine: Engine
    port: int

    @property
    def name(self) -> str:
        return str(self.container.get("name", ""))


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
    return ServingContainer(index=index, container=container, engine=engine, port=listen_port(container, engine))
