"""What a routed service needs from its engines' command lines, added where safe, reported where not.

- **Metrics for the picker.** Every scorer but prefix-cache reads the pods' `/metrics`. vLLM
  always serves them; SGLang only with `--enable-metrics`, and without it the picker sees every
  pod as idle and empty. The flag only turns an endpoint on, so it is added to an SGLang
  server's exec-form command; a shell script without it is reported (`MetricsDisabled`).
- **One model name across the pool.** The picker sends a request to any pod of the pool, so
  every serving role must answer to the same model names (`--served-model-name`, else the
  model): a prefill role serving `qwen` behind a decode role serving `Qwen/Qwen3-8B` answers
  half the requests with 404. Reported (`ServedModelNameMismatch`), never rewritten: which name
  is right is the user's call.
"""

from __future__ import annotations

import json
from typing import Any

from fusioninfer.api import command
from fusioninfer.api.v1alpha1 import Engine, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podparts import PodPart

SPEC_WARNINGS = "SpecWarnings"
SGLANG_METRICS_FLAG = "--enable-metrics"


def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    """`--enable-metrics` on the HTTP-serving SGLang server of a routed service."""
    if ctx.isvc.router is None or part is PodPart.WORKER or role.is_router:
        return template
    serving = engines.serving_container(role)
    if serving.engine is not Engine.SGLANG:
        return template
    containers = template.get("spec", {}).get("containers") or []
    container = next((c for c in containers if isinstance(c, dict) and c.get("name") == serving.name), None)
    if container is None or command.has_flag(command.command_words(container), SGLANG_METRICS_FLAG):
        return template
    if command.shell_script(container) is None:
        container["args"] = [*(str(a) for a in container.get("args") or []), SGLANG_METRICS_FLAG]
    else:
        ctx.notice(
            SPEC_WARNINGS,
            "MetricsDisabled",
            f"role {role.name}: the SGLang server runs a shell script without {SGLANG_METRICS_FLAG}; the endpoint "
            f"picker reads queue and KV-cache metrics from /metrics and sees every pod idle without them: add "
            f"{SGLANG_METRICS_FLAG} to the server command",
        )
    return template


def served_names(container: dict[str, Any], engine: Engine) -> tuple[str, ...]:
    """The model names the server answers to, as the engine reads its command line."""
    words = command.command_words(container)
    if engine is Engine.SGLANG:
        given = command.flag_value(words, "--served-model-name")
        model = command.flag_value(words, "--model-path", "--model")
        return (given,) if given else ((model,) if model else ())
    names: list[str] = []
    for i, word in enumerate(words):
        if command.flag_name(word) == "--served-model-name":
            if "=" in word:
                names.append(word.split("=", 1)[1])
                continue
            for value in words[i + 1 :]:
                if value.startswith("-"):
                    break
                names.append(value)
    if names:
        return tuple(names)
    model = command.flag_value(words, "--model")
    if model:
        return (model,)
    after_serve = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "serve"), None)
    return (after_serve,) if after_serve and not after_serve.startswith("-") else ()


def lint(ctx: BuildContext) -> None:
    """Every serving role behind the router answers to the same model names."""
    if ctx.isvc.router is None:
        return
    by_role: dict[str, tuple[str, ...]] = {}
    for role in ctx.isvc.serving_roles:
        serving = engines.serving_container(role)
        names = served_names(serving.container, serving.engine)
        if names:
            by_role[role.name] = tuple(sorted(names))
    if len(set(by_role.values())) > 1:
        listed = "; ".join(f"{name} serves {', '.join(names)}" for name, names in by_role.items())
        ctx.notice(
            SPEC_WARNINGS,
            "ServedModelNameMismatch",
            f"the roles behind router {ctx.isvc.router.name} answer to different model names ({listed}); the picker "
            "may send a request to a pod that does not serve its model (404): give every role the same "
            "--served-model-name",
        )


def adapter_names(container: dict[str, Any], engine: Engine) -> tuple[str, ...]:
    """LoRA adapters the server loads at start-up (clients ask for them by name)."""
    words = command.command_words(container)
    flag = "--lora-paths" if engine is Engine.SGLANG else "--lora-modules"
    names: list[str] = []
    for i, word in enumerate(words):
        if command.flag_name(word) != flag:
            continue
        values = [word.split("=", 1)[1]] if "=" in word else []
        for value in words[i + 1 :]:
            if value.startswith("--"):
                break
            values.append(value)
        for value in values:
            if value.lstrip().startswith("{"):
                try:
                    names.append(str(json.loads(value).get("name", "")))
                except ValueError:
                    continue
            else:
                names.append(value.split("=", 1)[0])
    return tuple(n for n in names if n)


def model_names(ctx: BuildContext) -> list[str]:
    """Every model name a client can ask this service for: served names and LoRA adapters."""
    names: set[str] = set()
    for role in ctx.isvc.serving_roles:
        serving = engines.serving_container(role)
        names.update(served_names(serving.container, serving.engine))
        names.update(adapter_names(serving.container, serving.engine))
    return sorted(names)
