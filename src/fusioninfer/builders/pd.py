"""Serving-pod wiring for routing: the "serves HTTP" label, and real prefill/decode (P/D) pods.

`decorate` runs for every part of every serving role (see `podtemplate.serving_pod_template`):

* SINGLE and LEADER parts of every role get `fusioninfer.io/serving: "true"`. The InferencePool
  selects on it, so exactly the pods that serve the OpenAI API are endpoints: single-node pods
  and multi-node leaders, never multi-node workers. (Selecting on LWS's `worker-index` label, as
  the Go original does, misses single-node Deployment pods, which do not carry it.)
* Only in a disaggregated service (prefiller + decoder roles), the llm-d P/D layout:
  - every prefill pod is labelled `llm-d.ai/role: prefill`, every decode pod `decode` (the labels
    the llm-d picker's `prefill-filter` / `decode-filter` read);
  - decode pods that serve HTTP get the llm-d routing sidecar on the pool port; the decode engine
    moves to an internal port behind it. The sidecar is what runs the prefill leg: the picker
    picks a decode pod and names a prefill pod in a header, and the sidecar calls the prefiller
    first. Without it, the P/D picker's choice of prefiller is ignored;
  - vLLM prefill and decode containers get the NIXL side-channel env and, unless the user gave
    one, `--kv-transfer-config {"kv_connector":"NixlConnector","kv_role":"kv_both"}`. A user's own
    KV-transfer config is never duplicated or overwritten (a deprecated connector gets a notice).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fusioninfer.api.v1alpha1 import ComponentType, Engine, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podtemplate import PodPart, add_labels

# A label of our own (the `fusioninfer.io/` prefix is reserved, so users cannot fake it).
LABEL_SERVING = "fusioninfer.io/serving"
SERVING_VALUE = "true"
# The label llm-d's prefill-filter / decode-filter select on.
LABEL_LLMD_ROLE = "llm-d.ai/role"
LLMD_PREFILL = "prefill"
LLMD_DECODE = "decode"

ROUTING_SIDECAR_IMAGE = "ghcr.io/llm-d/llm-d-routing-sidecar:v0.4.0"
SIDECAR_NAME = "routing-sidecar"
SIDECAR_PORT_NAME = "proxy-http"
# Where the decode engine listens once the sidecar owns the pool port (llm-d's own layout).
DECODE_INTERNAL_PORT = 8200
DEFAULT_POOL_PORT = 8000

NIXL_HOST_ENV = "VLLM_NIXL_SIDE_CHANNEL_HOST"
NIXL_PORT_ENV = "VLLM_NIXL_SIDE_CHANNEL_PORT"
NIXL_SIDE_CHANNEL_PORT = "5557"
KV_TRANSFER_FLAG = "--kv-transfer-config"
DEFAULT_KV_TRANSFER_CONFIG = json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"}, separators=(",", ":"))
# Connectors vLLM 0.11 removed together with the V0 engine (vllm#24152).
REMOVED_CONNECTORS = ("PyNcclConnector",)

# Native sidecars (init containers with restartPolicy: Always) are on by default from 1.29.
NATIVE_SIDECAR_MIN_VERSION = (1, 29)

SPEC_WARNINGS = "SpecWarnings"


# --- facts shared with the router builders ------------------------------------------------------
def serves_http(part: PodPart) -> bool:
    """Single-node pods and multi-node leaders serve the API; multi-node workers only compute."""
    return part is not PodPart.WORKER


def pool_port_roles(ctx: BuildContext) -> list[Role]:
    """The roles whose engine port the InferencePool targets.

    In a disaggregated service decode pods expose the routing sidecar on whatever port the pool
    uses, so only the prefillers' engine ports count.
    """
    roles = ctx.isvc.serving_roles
    if ctx.isvc.is_disaggregated:
        roles = [r for r in roles if r.component_type is ComponentType.PREFILLER]
    return roles


def pool_port(ctx: BuildContext) -> int:
    """The one port every HTTP-serving pod of the service answers on (the pool's targetPort).

    The first role's serving port wins when roles disagree; the router builder reports that.
    """
    roles = pool_port_roles(ctx)
    if not roles:
        return DEFAULT_POOL_PORT
    return engines.serving_container(roles[0]).port


def decode_internal_port(ctx: BuildContext) -> int:
    port = pool_port(ctx)
    return DECODE_INTERNAL_PORT if port != DECODE_INTERNAL_PORT else DECODE_INTERNAL_PORT + 1


def has_routing_sidecar(ctx: BuildContext, role: Role, part: PodPart) -> bool:
    return ctx.isvc.is_disaggregated and role.component_type is ComponentType.DECODER and serves_http(part)


def engine_port(ctx: BuildContext, role: Role, part: PodPart) -> int:
    """Where the engine itself listens in `part` of `role` once decorated.

    Equal to `engine.serving_container(role).port`, except on decode pods of a P/D service that
    serve HTTP: there the routing sidecar owns the pool port and the engine sits behind it.
    Probes meant to check the engine (not the sidecar) must use this port.
    """
    if has_routing_sidecar(ctx, role, part):
        return decode_internal_port(ctx)
    return engines.serving_container(role).port


def sidecar_image(ctx: BuildContext) -> str:
    """The router's `endpointPicker.routingSidecarImage`, else the operator default, else ours."""
    router = ctx.isvc.router
    if router is not None and router.endpoint_picker is not None and router.endpoint_picker.routing_sidecar_image:
        return router.endpoint_picker.routing_sidecar_image
    return ctx.options.routing_sidecar_image or ROUTING_SIDECAR_IMAGE


def server_version(ctx: BuildContext) -> tuple[int, int] | None:
    """The apiserver's (major, minor) when the controller discovered it; None means "recent".

    Read defensively: `Capabilities` may carry a `server_version` (offline renders do not).
    """
    version = getattr(ctx.capabilities, "server_version", None)
    if isinstance(version, tuple) and len(version) >= 2 and all(isinstance(v, int) for v in version[:2]):
        return (version[0], version[1])
    return None


def native_sidecars(ctx: BuildContext) -> bool:
    version = server_version(ctx)
    return version is None or version >= NATIVE_SIDECAR_MIN_VERSION


def vllm_version(image: str) -> tuple[int, int] | None:
    """(major, minor) of a vLLM image tag such as `vllm/vllm-openai:v0.11.0`; None when unknown."""
    match = re.search(r":v?(\d+)\.(\d+)(?:[.\-+].*)?$", image)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


# --- command-line editing -----------------------------------------------------------------------
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh"})


def _shell_script(container: dict[str, Any]) -> tuple[str, int] | None:
    """Where the script of a `sh -c '<script>'` container lives: (field, index), else None."""
    command = container.get("command")
    if not isinstance(command, list) or not command:
        return None
    if str(command[0]).rsplit("/", 1)[-1] not in _SHELLS or "-c" not in command:
        return None
    at = command.index("-c") + 1
    if at < len(command):
        return "command", at
    args = container.get("args")
    if isinstance(args, list) and args:
        return "args", 0
    return None


def _flag_pattern(flag: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\S){re.escape(flag)}(?:=(\S+)|\s+(\S+)|(?=\s|$))")


def _argv_fields(container: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    for key in ("args", "command"):
        value = container.get(key)
        if isinstance(value, list):
            yield key, value


def flag_value(container: dict[str, Any], flag: str) -> str | None:
    """The value of `flag` in a container's argv or shell script; "" when present without one."""
    script = _shell_script(container)
    if script is not None:
        text = str(container[script[0]][script[1]])
        match = _flag_pattern(flag).search(text)
        if match is not None:
            return match.group(1) or match.group(2) or ""
    for _, argv in _argv_fields(container):
        for i, token in enumerate(argv):
            token = str(token)
            if token == flag:
                return str(argv[i + 1]) if i + 1 < len(argv) else ""
            if token.startswith(flag + "="):
                return token.split("=", 1)[1]
    return None


def set_flag(container: dict[str, Any], flag: str, value: str) -> bool:
    """Set `flag` to `value`: rewrite it where it is, else append it to `args`.

    Returns False when the container is a shell script without the flag: appending to a script
    could land after `&&` or inside a loop, so we leave it to the user (the caller reports it).
    """
    for _, argv in _argv_fields(container):
        for i, token in enumerate(argv):
            token = str(token)
            if token == flag and i + 1 < len(argv):
                argv[i + 1] = value
                return True
            if token.startswith(flag + "="):
                argv[i] = f"{flag}={value}"
                return True
    script = _shell_script(container)
    if script is not None:
        field, index = script
        text = str(container[field][index])
        pattern = _flag_pattern(flag)
        if pattern.search(text) is None:
            return False
        container[field][index] = pattern.sub(f"{flag} {value}", text, count=1)
        return True
    container.setdefault("args", []).extend([flag, value])
    return True


def _add_env(container: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    env: list[dict[str, Any]] = container.setdefault("env", [])
    present = {e.get("name") for e in env if isinstance(e, dict)}
    env.extend(e for e in entries if e["name"] not in present)


# --- the decorator ------------------------------------------------------------------------------
def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    """Label HTTP-serving pods, and wire prefill/decode pods of a disaggregated service."""
    if role.is_router:
        return template
    if serves_http(part):
        add_labels(template, {LABEL_SERVING: SERVING_VALUE})
    if not ctx.isvc.is_disaggregated or role.component_type not in (ComponentType.PREFILLER, ComponentType.DECODER):
        return template

    is_decode = role.component_type is ComponentType.DECODER
    add_labels(template, {LABEL_LLMD_ROLE: LLMD_DECODE if is_decode else LLMD_PREFILL})
    serving = engines.serving_container(role)
    containers = template.get("spec", {}).get("containers")
    if not isinstance(containers, list) or serving.index >= len(containers):
        return template
    container: dict[str, Any] = containers[serving.index]

    if serving.engine is Engine.VLLM:
        # Notices once per role: multi-node roles are decorated once per part.
        _wire_nixl(ctx, role, container, report=serves_http(part))
    if has_routing_sidecar(ctx, role, part):
        _add_routing_sidecar(ctx, role, template, container, serving.engine, serving.port)
    return template


def _wire_nixl(ctx: BuildContext, role: Role, container: dict[str, Any], report: bool) -> None:
    """NIXL side channel + a KV connector on a vLLM prefill/decode container (user's wins)."""
    _add_env(
        container,
        [
            {"name": NIXL_HOST_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": NIXL_PORT_ENV, "value": NIXL_SIDE_CHANNEL_PORT},
        ],
    )
    given = flag_value(container, KV_TRANSFER_FLAG)
    if given is None:
        if not set_flag(container, KV_TRANSFER_FLAG, DEFAULT_KV_TRANSFER_CONFIG) and report:
            ctx.notice(
                SPEC_WARNINGS,
                "CannotRewriteCommand",
                f"role {role.name}: the container {container.get('name')!r} runs a shell script without "
                f"{KV_TRANSFER_FLAG}; add {KV_TRANSFER_FLAG} '{DEFAULT_KV_TRANSFER_CONFIG}' to it for P/D",
            )
        return
    removed = next((c for c in REMOVED_CONNECTORS if c in _all_text(container)), None)
    version = vllm_version(str(container.get("image", "")))
    if report and removed is not None and version is not None and version >= (0, 11):
        ctx.notice(
            SPEC_WARNINGS,
            "DeprecatedKVConnector",
            f"role {role.name}: {KV_TRANSFER_FLAG} names {removed}, which vLLM 0.11 removed with the V0 engine; "
            f"the engine will not start. Use '{DEFAULT_KV_TRANSFER_CONFIG}' on prefill and decode "
            f"(or drop the flag and the operator adds it)",
        )


def _all_text(container: dict[str, Any]) -> str:
    return " ".join(str(t) for _, argv in _argv_fields(container) for t in argv)


def _add_routing_sidecar(
    ctx: BuildContext,
    role: Role,
    template: Manifest,
    container: dict[str, Any],
    engine: Engine,
    engine_port: int,
) -> None:
    """Move the decode engine to the internal port and put the routing sidecar on the pool port."""
    public = pool_port(ctx)
    internal = decode_internal_port(ctx)
    if not set_flag(container, "--port", str(internal)):
        ctx.notice(
            SPEC_WARNINGS,
            "CannotRewriteCommand",
            f"role {role.name}: the container {container.get('name')!r} runs a shell script without --port; "
            f"add --port {internal} to it so the routing sidecar can own port {public}",
        )
    for port in container.get("ports") or []:
        if isinstance(port, dict) and port.get("containerPort") in (engine_port, public):
            port["containerPort"] = internal
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if not isinstance(probe, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            action = probe.get(handler)
            if isinstance(action, dict) and action.get("port") in (engine_port, public):
                action["port"] = internal

    connector = "sglang" if engine is Engine.SGLANG else "nixlv2"
    sidecar: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": sidecar_image(ctx),
        "args": [
            f"--port={public}",
            f"--vllm-port={internal}",
            f"--connector={connector}",
            # The default (true) serves TLS, which the picker's plain-HTTP metrics scrape cannot read.
            "--secure-proxy=false",
        ],
        "ports": [{"name": SIDECAR_PORT_NAME, "containerPort": public, "protocol": "TCP"}],
    }
    spec = template.setdefault("spec", {})
    if native_sidecars(ctx):
        # An init container that keeps running: up before the engine, stopped after it.
        sidecar["restartPolicy"] = "Always"
        spec.setdefault("initContainers", []).append(sidecar)
    else:
        # Before 1.29 `restartPolicy` on an init container is dropped and the pod would never get
        # past it; a plain container (appended, so container indexes stay put) works everywhere.
        spec["containers"].append(sidecar)
