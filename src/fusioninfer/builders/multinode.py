"""Multi-node roles: engine-aware leader/worker start-up commands and probes of their pods.

The LeaderWorkerSet that runs these pods is built in `leaderworkerset`.

Start-up commands (`decorate`) are rewritten on the serving container only, and only by adding
what is missing: a flag the user already wrote is never added again. Addresses use Kubernetes'
own `$(VAR)` expansion of the variables the LWS pod webhook injects (`LWS_LEADER_ADDRESS`,
`LWS_WORKER_INDEX`), in exec-form arguments and in `sh -c` scripts alike: the kubelet expands
them before any shell runs, so no shell is needed just to read them, and a variable that is
missing stays visible as the literal `$(LWS_LEADER_ADDRESS)` in the error instead of silently
expanding to an empty string.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from fusioninfer.api import command
from fusioninfer.api.v1alpha1 import Engine, MultinodeBackend, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.health import http_readiness_probe
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.ports import engine_port

# Injected into every container of an LWS pod by the LWS pod webhook; expanded by the kubelet.
LEADER_ADDRESS = "$(LWS_LEADER_ADDRESS)"
WORKER_INDEX = "$(LWS_WORKER_INDEX)"

RAY_PORT = 6379
MP_MASTER_PORT = 29500
SGLANG_DIST_PORT = 20000
# The vllm/vllm-openai image's entrypoint; used when the template relies on it (no command).
VLLM_ENTRYPOINT = ("vllm", "serve")
SHELL = "/bin/sh"

RAY_HEAD = f"ray start --head --port={RAY_PORT}"
# Workers retry until the head listens: the leader may still be pulling its image, and a worker
# that exits would restart, which under RecreateGroupOnPodRestart recreates the whole group.
RAY_WORKER_SCRIPT = (
    f"until ray start --address={LEADER_ADDRESS}:{RAY_PORT} --block; do echo waiting for the Ray head; sleep 5; done"
)

SPEC_WARNINGS = "SpecWarnings"
CANNOT_REWRITE = "CannotRewriteCommand"
IGNORED_FIELD = "IgnoredField"

# Short spellings the engines accept for the flags we add (vLLM: `-n`, `-r`).
_ALIASES: dict[Engine, dict[str, tuple[str, ...]]] = {
    Engine.VLLM: {"--nnodes": ("-n",), "--node-rank": ("-r",)},
    Engine.SGLANG: {"--dist-init-addr": ("--nccl-init-addr",)},
}

Flag = tuple[str, str | None]


# --- pod templates ------------------------------------------------------------------------------
def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    """Leader/worker start-up and probes of the serving container of a multi-node role; for a
    single-node SGLang server, only the listen address (see `_expose_sglang`)."""
    serving = engines.serving_container(role)
    container = _find_container(template, serving)
    if container is None:
        return template
    if part is PodPart.SINGLE or not role.is_multinode:
        if serving.engine is Engine.SGLANG and (role.multinode is None or role.multinode.rewrite_command is not False):
            _expose_sglang(ctx, role, container, part)
        return template
    _warn_about_ignored_backend(ctx, role, container, serving.engine)
    # Before any rewrite: `--port` is easiest to read from the user's own argv.
    port = _listen_port(container, engine_port(ctx, role, part))
    if role.multinode is None or role.multinode.rewrite_command is not False:
        _rewrite(ctx, role, container, serving.engine, part)
    if part is PodPart.LEADER:
        if "readinessProbe" not in container:
            # The leader serves the OpenAI API: ready means the engine answers, not that Ray is up.
            container["readinessProbe"] = http_readiness_probe(port)
    else:
        _drop_probes_on_port(container, port)
    return template


def _expose_sglang(ctx: BuildContext, role: Role, container: dict[str, Any], part: PodPart) -> None:
    """SGLang listens on 127.0.0.1 unless told otherwise: the kubelet's probes, the InferencePool
    and the P/D sidecar could never reach it. Add `--host 0.0.0.0` when the user gave no host."""
    if not has_flag(command_words(container), "--host"):
        _append_flags(ctx, role, container, part, ["--host", "0.0.0.0"])


def _role_path(ctx: BuildContext, role: Role) -> str:
    index = next(i for i, r in enumerate(ctx.isvc.spec.roles) if r.name == role.name)
    return f"spec.roles[{index}]"


def _warn_about_ignored_backend(ctx: BuildContext, role: Role, container: dict[str, Any], engine: Engine) -> None:
    """`multinode.backend` loses to what the command says, and means nothing to SGLang: say so,
    instead of silently running something other than what the spec asks for."""
    wanted = role.multinode.backend if role.multinode is not None else None
    if wanted is None:
        return
    if engine is Engine.SGLANG:
        ctx.notice(
            SPEC_WARNINGS,
            IGNORED_FIELD,
            f"{_role_path(ctx, role)}.multinode.backend: {wanted.value!r} is ignored: "
            "it selects vLLM's distributed executor, and this role runs SGLang",
        )
        return
    given = _flag_value(command_words(container), "--distributed-executor-backend")
    if given is not None and given != wanted.value:
        ctx.notice(
            SPEC_WARNINGS,
            IGNORED_FIELD,
            f"{_role_path(ctx, role)}.multinode.backend: {wanted.value!r} is ignored: the serving "
            f"command already says --distributed-executor-backend {given}",
        )


def vllm_backend(role: Role, words: Sequence[str]) -> MultinodeBackend:
    """The user's own `--distributed-executor-backend` wins, then `multinode.backend`, then Ray."""
    given = _flag_value(words, "--distributed-executor-backend")
    if given in {b.value for b in MultinodeBackend}:
        return MultinodeBackend(given)
    if role.multinode is not None and role.multinode.backend is not None:
        return role.multinode.backend
    return MultinodeBackend.RAY


def _rewrite(ctx: BuildContext, role: Role, container: dict[str, Any], engine: Engine, part: PodPart) -> None:
    words = command_words(container)
    nodes = str(role.node_count)
    if engine is Engine.SGLANG:
        flags: list[Flag] = [
            ("--dist-init-addr", f"{LEADER_ADDRESS}:{SGLANG_DIST_PORT}"),
            ("--nnodes", nodes),
            ("--node-rank", WORKER_INDEX),
        ]
        if part is PodPart.LEADER:
            # SGLang listens on 127.0.0.1 by default: unreachable for the probe and the pool.
            flags.append(("--host", "0.0.0.0"))
        _append_flags(ctx, role, container, part, missing_flags(words, flags, engine))
        return

    backend = vllm_backend(role, words)
    if backend is MultinodeBackend.MP:
        flags = [
            ("--distributed-executor-backend", "mp"),
            ("--nnodes", nodes),
            ("--node-rank", WORKER_INDEX),
            ("--master-addr", LEADER_ADDRESS),
            ("--master-port", str(MP_MASTER_PORT)),
        ]
        if part is PodPart.WORKER:
            flags.append(("--headless", None))
        _append_flags(ctx, role, container, part, missing_flags(words, flags, engine))
        return

    # Ray: workers only join the leader's Ray cluster; the leader starts the head, then vLLM.
    if part is PodPart.WORKER:
        container["command"] = [SHELL, "-c", RAY_WORKER_SCRIPT]
        container.pop("args", None)
        return
    script_at = shell_script(container)
    if script_at is not None:
        # vLLM picks the Ray executor by itself when the world size exceeds the local GPUs, which
        # is always so across nodes; the user's script is run as written, after the head is up.
        field, index = script_at
        container[field][index] = f"{RAY_HEAD} && {container[field][index]}"
        return
    command = [str(c) for c in container.get("command") or []] or list(VLLM_ENTRYPOINT)
    args = [str(a) for a in container.get("args") or []]
    extra = missing_flags(words, [("--distributed-executor-backend", "ray")], engine)
    container["command"] = [SHELL, "-c", f"{RAY_HEAD} && exec {shlex.join([*command, *args, *extra])}"]
    container.pop("args", None)


def _append_flags(ctx: BuildContext, role: Role, container: dict[str, Any], part: PodPart, flags: list[str]) -> None:
    """Append to exec-form args; a shell script is not edited (the flags could land after `&&`)."""
    if not flags:
        return
    if shell_script(container) is None:
        container["args"] = [*(str(a) for a in container.get("args") or []), *flags]
        return
    ctx.notice(
        SPEC_WARNINGS,
        CANNOT_REWRITE,
        f"role {role.name}: the serving container {container.get('name')!r} runs a shell script, so the "
        f"multi-node flags were not added; add `{shlex.join(flags)}` to the {part.value}'s server command, "
        f"or write the whole multi-node command and set multinode.rewriteCommand: false",
    )


def _drop_probes_on_port(container: dict[str, Any], port: int) -> None:
    """Workers serve no HTTP: a probe on the API port would keep them unready (readiness) or
    restart them forever (liveness/startup), which recreates the whole group."""
    named = {
        str(p.get("name")): p.get("containerPort")
        for p in container.get("ports") or []
        if isinstance(p, dict) and p.get("name")
    }
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(key)
        if not isinstance(probe, dict):
            continue
        for handler in ("httpGet", "tcpSocket", "grpc"):
            action = probe.get(handler)
            if not isinstance(action, dict):
                continue
            target = action.get("port")
            if target == port or str(target) == str(port) or named.get(str(target)) == port:
                del container[key]
                break


# --- command lines ------------------------------------------------------------------------------
def _find_container(template: Manifest, serving: engines.ServingContainer) -> dict[str, Any] | None:
    containers = template.get("spec", {}).get("containers")
    if not isinstance(containers, list):
        return None
    for container in containers:
        if isinstance(container, dict) and container.get("name") == serving.name:
            return container
    if serving.index < len(containers) and isinstance(containers[serving.index], dict):
        found: dict[str, Any] = containers[serving.index]
        return found
    return None


argv = command.argv
shell_script = command.shell_script
command_words = command.command_words
has_flag = command.has_flag
_flag_value = command.flag_value


def missing_flags(words: Sequence[str], flags: Sequence[Flag], engine: Engine) -> list[str]:
    """The flags (with values) not already on the command line, in any spelling."""
    aliases = _ALIASES.get(engine, {})
    out: list[str] = []
    for flag, value in flags:
        if has_flag(words, flag, *aliases.get(flag, ())):
            continue
        out += [flag] if value is None else [flag, value]
    return out


def _listen_port(container: dict[str, Any], default: int) -> int:
    """The port the server listens on: its `--port` flag, else `default` (declared or engine default)."""
    value = command.container_flag(container, "--port")
    if value is not None and value.isdigit():
        return int(value)
    return default
