"""SGLang prefill/decode: the flags that make its servers disaggregate (pure).

Without `--disaggregation-mode` both SGLang servers compute every request end to end: the
service looks disaggregated and is not. A prefill role gets `--disaggregation-mode prefill`, a
decode role `--disaggregation-mode decode`, both the same `--disaggregation-transfer-backend`
(NIXL unless the user chose: it runs over UCX/TCP where no RDMA device is configured, while
SGLang's default, Mooncake, needs `--disaggregation-ib-device` per machine), and the prefill
server's bootstrap port (SGLang's default 8998, or the user's `--disaggregation-bootstrap-port`)
is declared on its pod and handed to the decode pods' routing sidecar, which sends each
request to both servers with the prefill's bootstrap host, port and room (the llm-d sidecar's
`sglang` connector reads `SGLANG_BOOTSTRAP_PORT`).

The user's own flags are kept; a flag that contradicts the role is refused by validation
(`api/pd_rules.py`).
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api import command
from fusioninfer.api.v1alpha1 import ComponentType, Engine, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext

MODE_FLAG = "--disaggregation-mode"
BACKEND_FLAG = "--disaggregation-transfer-backend"
BOOTSTRAP_FLAG = "--disaggregation-bootstrap-port"
DEFAULT_BACKEND = "nixl"
DEFAULT_BOOTSTRAP_PORT = 8998
BOOTSTRAP_ENV = "SGLANG_BOOTSTRAP_PORT"
BOOTSTRAP_PORT_NAME = "pd-bootstrap"
SPEC_WARNINGS = "SpecWarnings"


def _sglang_roles(ctx: BuildContext, kind: ComponentType) -> list[Role]:
    return [
        r
        for r in ctx.isvc.serving_roles
        if r.component_type is kind and engines.serving_container(r).engine is Engine.SGLANG
    ]


def transfer_backend(ctx: BuildContext) -> str:
    """The backend a user named on any SGLang prefill or decode role, else NIXL."""
    for kind in (ComponentType.PREFILLER, ComponentType.DECODER):
        for role in _sglang_roles(ctx, kind):
            given = command.container_flag(engines.serving_container(role).container, BACKEND_FLAG)
            if given:
                return given
    return DEFAULT_BACKEND


def bootstrap_port(ctx: BuildContext) -> int:
    """The prefill servers' bootstrap port (the first prefill role's flag, else SGLang's default)."""
    for role in _sglang_roles(ctx, ComponentType.PREFILLER):
        given = command.container_flag(engines.serving_container(role).container, BOOTSTRAP_FLAG)
        if given and given.isdigit():
            return int(given)
    return DEFAULT_BOOTSTRAP_PORT


def wire(ctx: BuildContext, role: Role, container: dict[str, Any], report: bool) -> None:
    """Add the disaggregation flags to an SGLang prefill or decode container (user's flags kept)."""
    is_decode = role.component_type is ComponentType.DECODER
    wanted = [(MODE_FLAG, "decode" if is_decode else "prefill"), (BACKEND_FLAG, transfer_backend(ctx))]
    if not is_decode:
        wanted.append((BOOTSTRAP_FLAG, str(bootstrap_port(ctx))))
    words = command.command_words(container)
    missing = [(flag, value) for flag, value in wanted if not command.has_flag(words, flag)]
    for flag, value in missing:
        if not command.set_flag(container, flag, value) and report:
            ctx.notice(
                SPEC_WARNINGS,
                "CannotRewriteCommand",
                f"role {role.name}: the container {container.get('name')!r} runs a shell script without {flag}; "
                f"add {flag} {value} to it, or SGLang computes every request on both roles",
            )
    if not is_decode:
        ports: list[dict[str, Any]] = container.setdefault("ports", [])
        if not any(isinstance(p, dict) and p.get("containerPort") == bootstrap_port(ctx) for p in ports):
            ports.append({"name": BOOTSTRAP_PORT_NAME, "containerPort": bootstrap_port(ctx), "protocol": "TCP"})


def sidecar_env(ctx: BuildContext) -> list[dict[str, str]]:
    """What the decode pods' routing sidecar needs to reach the prefill servers' bootstrap."""
    return [{"name": BOOTSTRAP_ENV, "value": str(bootstrap_port(ctx))}]
