"""Expand the serving fields (model, engineArgs, speculativeDecoding, resources) into containers.

The result is exactly the raw-template form of the same service: every builder downstream reads
pod templates only, so a service written with fields and one written as containers render the
same. Pure; `expand` returns the expanded service and the errors, each naming the field and,
for a contradiction, the template path that says otherwise. Nothing the user wrote is
overridden: a flag already in the container with the same value is kept once, with another
value it is an error; a flag a field needs that a shell script lacks is an error too (flags are
not appended to scripts: they could land after `&&`).

Rendered per engine (flags read from the engines' own parsers, docs/engines.md):

| field | vLLM 0.11 | SGLang 0.5 |
|---|---|---|
| model.name | `--model` | `--model-path` |
| model.servedName | `--served-model-name` | `--served-model-name` |
| model.loraAdapters | `--enable-lora --max-loras N --lora-modules a=src ...` | `--enable-lora --lora-paths a=src ...` |
| model.tokenSecretRef | env `HF_TOKEN` from the Secret | same |
| engineArgs `k: v` | `--k v`; `true` -> `--k`; `false` -> `--no-k` | `--k v`; `true` -> `--k`; `false` -> left out |
| speculativeDecoding | `--speculative-config {"method", "model", "num_speculative_tokens"}` | see below |
| resources | the serving container's `resources` | same |

SGLang speculative decoding: `--speculative-algorithm` (draft_model: STANDALONE, eagle: EAGLE,
eagle3: EAGLE3, ngram: NGRAM, mtp: NEXTN), `--speculative-draft-model-path`, a chain of
`--speculative-num-steps N --speculative-eagle-topk 1 --speculative-num-draft-tokens N+1`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from fusioninfer.api import command
from fusioninfer.api.errors import FieldError
from fusioninfer.api.model_spec import ModelSpec, merged_model
from fusioninfer.api.v1alpha1 import Engine, InferenceService, PodTemplate, Role

PINNED_IMAGES = {Engine.VLLM: "vllm/vllm-openai:v0.11.0", Engine.SGLANG: "lmsysorg/sglang:v0.5.3"}
COMMANDS = {Engine.VLLM: ["vllm", "serve"], Engine.SGLANG: ["python3", "-m", "sglang.launch_server"]}
VLLM_SPECULATIVE = frozenset(
    {"ngram", "eagle", "eagle3", "medusa", "mlp_speculator", "draft_model", "deepseek_mtp", "ernie_mtp",
     "qwen3_next_mtp", "mimo_mtp", "longcat_flash_mtp", "mtp"}
)  # fmt: skip
SGLANG_SPECULATIVE = {
    "draft_model": "STANDALONE",
    "eagle": "EAGLE",
    "eagle3": "EAGLE3",
    "ngram": "NGRAM",
    "mtp": "NEXTN",
    "deepseek_mtp": "NEXTN",
}
NEEDS_DRAFT = frozenset({"draft_model", "eagle", "eagle3", "medusa", "mlp_speculator"})
TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class Wanted:
    """Flags a field asks for: `flag` followed by `values` (none: a switch)."""

    flag: str
    values: tuple[str, ...]
    path: str


def has_serving_fields(isvc: InferenceService, role: Role) -> bool:
    return not role.is_router and any(
        v is not None
        for v in (isvc.spec.model, role.model, role.engine_args, role.speculative_decoding, role.resources)
    )


def _engine(role: Role, containers: list[dict[str, Any]]) -> Engine:
    if role.engine not in (None, Engine.AUTO):
        assert role.engine is not None
        return role.engine
    return next((e for c in containers if (e := command.detect_engine(c)) is not None), Engine.VLLM)


def _model_flags(engine: Engine, model: ModelSpec, at: str) -> list[Wanted]:
    out: list[Wanted] = []
    if model.name:
        out.append(Wanted("--model-path" if engine is Engine.SGLANG else "--model", (model.name,), f"{at}.name"))
    if model.served_name:
        out.append(Wanted("--served-model-name", (model.served_name,), f"{at}.servedName"))
    adapters = model.lora_adapters or []
    if adapters:
        path = f"{at}.loraAdapters"
        pairs = tuple(f"{a.name}={a.source}" for a in adapters)
        out.append(Wanted("--enable-lora", (), path))
        if engine is Engine.SGLANG:
            out.append(Wanted("--lora-paths", pairs, path))
        else:
            out += [Wanted("--max-loras", (str(len(adapters)),), path), Wanted("--lora-modules", pairs, path)]
    return out


def _engine_arg_flags(engine: Engine, args: dict[str, Any], at: str) -> list[Wanted]:
    out: list[Wanted] = []
    for key, value in args.items():
        path = f"{at}[{key}]"
        if value is True:
            out.append(Wanted(f"--{key}", (), path))
        elif value is False:
            if engine is Engine.VLLM:
                out.append(Wanted(f"--no-{key}", (), path))
        else:
            out.append(Wanted(f"--{key}", (str(value),), path))
    return out


def _speculative_flags(engine: Engine, role: Role, at: str, errors: list[FieldError]) -> list[Wanted]:
    spec = role.speculative_decoding
    if spec is None:
        return []
    if spec.method in NEEDS_DRAFT and not spec.draft_model:
        errors.append(FieldError(f"{at}.draftModel", f"Required value: method {spec.method} needs a draft model"))
        return []
    if engine is Engine.SGLANG:
        algorithm = SGLANG_SPECULATIVE.get(spec.method)
        if algorithm is None:
            known = ", ".join(sorted(SGLANG_SPECULATIVE))
            errors.append(FieldError(f"{at}.method", f"Unsupported value: {spec.method!r} on SGLang: use {known}"))
            return []
        out = [Wanted("--speculative-algorithm", (algorithm,), f"{at}.method")]
        if spec.draft_model:
            out.append(Wanted("--speculative-draft-model-path", (spec.draft_model,), f"{at}.draftModel"))
        steps = str(spec.num_speculative_tokens)
        out += [
            Wanted("--speculative-num-steps", (steps,), f"{at}.numSpeculativeTokens"),
            Wanted("--speculative-eagle-topk", ("1",), f"{at}.numSpeculativeTokens"),
            Wanted(
                "--speculative-num-draft-tokens", (str(spec.num_speculative_tokens + 1),), f"{at}.numSpeculativeTokens"
            ),
        ]
        return out
    if spec.method not in VLLM_SPECULATIVE:
        known = ", ".join(sorted(VLLM_SPECULATIVE))
        errors.append(FieldError(f"{at}.method", f"Unsupported value: {spec.method!r} on vLLM 0.11: use {known}"))
        return []
    config: dict[str, Any] = {"method": spec.method, "num_speculative_tokens": spec.num_speculative_tokens}
    if spec.draft_model:
        config["model"] = spec.draft_model
    return [Wanted("--speculative-config", (json.dumps(config, separators=(",", ":")),), at)]


def _values_after(words: list[str], flag: str) -> tuple[str, ...] | None:
    """The values given to `flag` (several for nargs flags), or None when it is absent."""
    for i, word in enumerate(words):
        if command.flag_name(word) != flag:
            continue
        if "=" in word:
            return (word.split("=", 1)[1],)
        values = []
        for value in words[i + 1 :]:
            if value.startswith("--"):
                break
            values.append(value)
        return tuple(values)
    return None


def _merge_flags(container: dict[str, Any], wanted: list[Wanted], args_path: str, errors: list[FieldError]) -> None:
    words = command.command_words(container)
    script = command.shell_script(container) is not None
    for item in wanted:
        given = _values_after(words, item.flag)
        if given is None and item.flag.startswith("--no-"):
            given = None if _values_after(words, "--" + item.flag[5:]) is None else ("(on)",)
        if given is not None:
            same = given == item.values or (not item.values and given in ((), ("",)))
            if not same:
                shown = " ".join([item.flag, *item.values])
                errors.append(
                    FieldError(
                        item.path,
                        f"Invalid value: {shown!r} contradicts {args_path}, which says "
                        f"{' '.join([item.flag, *given])!r}: set it in one place",
                    )
                )
            continue
        if script:
            errors.append(
                FieldError(
                    item.path,
                    f"Forbidden: {args_path} runs a shell script, which {item.flag} cannot be added to; write the "
                    "flag in the script or leave the field out",
                )
            )
            continue
        container["args"] = [*(str(a) for a in container.get("args") or []), item.flag, *item.values]


def _merge_env_and_resources(
    container: dict[str, Any],
    model: ModelSpec | None,
    role: Role,
    paths: tuple[str, str, str],
    errors: list[FieldError],
) -> None:
    """The token env and the resources; `paths` = (role prefix, model field, container path)."""
    prefix, at, cpath = paths
    if model is not None and model.token_secret_ref is not None:
        ref = model.token_secret_ref
        entry = {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
        env: list[dict[str, Any]] = container.setdefault("env", [])
        existing = next((e for e in env if isinstance(e, dict) and e.get("name") == TOKEN_ENV), None)
        if existing is None:
            env.append(entry)
        elif existing != entry:
            errors.append(
                FieldError(
                    f"{at}.tokenSecretRef", f"Invalid value: contradicts {cpath}.env[{TOKEN_ENV}]: set it in one place"
                )
            )
    if role.resources is not None:
        current = container.get("resources")
        if current and current != role.resources:
            errors.append(
                FieldError(
                    f"{prefix}.resources",
                    f"Invalid value: contradicts {cpath}.resources: set them in one place",
                )
            )
        else:
            container["resources"] = copy.deepcopy(role.resources)


def expand(isvc: InferenceService) -> tuple[InferenceService, list[FieldError]]:
    """The same service with every serving field written into its serving container."""
    if not any(has_serving_fields(isvc, r) for r in isvc.spec.roles):
        return isvc, []
    errors: list[FieldError] = []
    out = isvc.model_copy(deep=True)
    for index, role in enumerate(out.spec.roles):
        if not has_serving_fields(isvc, role):
            continue
        prefix = f"spec.roles[{index}]"
        model = merged_model(isvc.spec.model, role.model)
        model_at = f"{prefix}.model" if role.model is not None else "spec.model"
        if role.template is None:
            if model is None or not model.name:
                errors.append(FieldError(f"{model_at}.name", "Required value: a role without a template needs a model"))
                continue
            engine = _engine(role, [])
            container = {"name": engine.value, "image": PINNED_IMAGES[engine], "command": list(COMMANDS[engine])}
            role.template = PodTemplate.model_validate({"spec": {"containers": [container]}})
        spec = role.template.spec if role.template.spec is not None else {}
        containers: list[dict[str, Any]] = spec.get("containers") or []
        if not containers:
            continue  # validation reports the empty pod template
        engine = _engine(role, containers)
        position = next((i for i, c in enumerate(containers) if command.detect_engine(c) is not None), 0)
        container = containers[position]
        cpath = f"{prefix}.template.spec.containers[{position}]"
        wanted = _model_flags(engine, model, model_at) if model is not None else []
        wanted += _engine_arg_flags(engine, role.engine_args or {}, f"{prefix}.engineArgs")
        wanted += _speculative_flags(engine, role, f"{prefix}.speculativeDecoding", errors)
        _merge_flags(container, wanted, f"{cpath}.args", errors)
        _merge_env_and_resources(container, model, role, (prefix, model_at, cpath), errors)
        role.template.spec = spec
    return out, errors
