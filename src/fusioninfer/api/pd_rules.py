"""Rules of prefill/decode disaggregation that the engines themselves enforce at start-up.

vLLM's NixlConnector transfers KV blocks from prefill to decode ranks and supports a decode
tensor-parallel size equal to or larger than the prefill's, never smaller: with decode TP <
prefill TP the NIXL handshake fails when the first request arrives, long after every pod looked
healthy. Refused here, with the decode role's field path, instead.

Pure: reads the spec only, the command line as `api.command` reads it.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api.command import command_words, first_container_of, flag_value
from fusioninfer.api.errors import FieldError
from fusioninfer.api.v1alpha1 import ComponentType, Engine, InferenceService, Role

TP_FLAGS = ("--tensor-parallel-size", "-tp")
KV_TRANSFER_FLAG = "--kv-transfer-config"
NIXL = "NixlConnector"


def _words(container: dict[str, object]) -> list[str]:
    return command_words(dict(container))


def _flag(words: list[str], names: tuple[str, ...]) -> str | None:
    return flag_value(words, *names)


def _serving(role: Role) -> tuple[int, dict[str, object]] | None:
    """The first container that runs vLLM, with its index (the serving container of a vLLM role)."""
    spec = role.template.spec if role.template is not None else None
    for index, container in enumerate((spec or {}).get("containers") or []):
        if isinstance(container, dict) and "vllm" in " ".join([str(container.get("image", "")), *_words(container)]):
            return index, container
    return None


def _nixl_tp(role: Role) -> tuple[int, int] | None:
    """(container index, tensor-parallel size) of a vLLM role that transfers KV with NIXL: the
    operator's default connector, or the user's own `--kv-transfer-config` naming it."""
    found = _serving(role)
    if found is None:
        return None
    index, container = found
    words = _words(container)
    connector = _flag(words, (KV_TRANSFER_FLAG,))
    if connector is not None and NIXL not in connector:
        return None
    tp = _flag(words, TP_FLAGS)
    return index, int(tp) if tp is not None and tp.isdigit() else 1


def check_nixl_tensor_parallel(isvc: InferenceService) -> list[FieldError]:
    """Decode TP must be >= the largest prefill TP when both sides use NIXL."""
    if not isvc.is_disaggregated:
        return []
    prefill = [(r, _nixl_tp(r)) for r in isvc.spec.roles if r.component_type is ComponentType.PREFILLER]
    prefill_tps = [(r.name, tp[1]) for r, tp in prefill if tp is not None]
    if not prefill_tps:
        return []
    widest_name, widest = max(prefill_tps, key=lambda item: item[1])
    errors: list[FieldError] = []
    for index, role in enumerate(isvc.spec.roles):
        if role.component_type is not ComponentType.DECODER:
            continue
        found = _nixl_tp(role)
        if found is None or found[1] >= widest:
            continue
        errors.append(
            FieldError(
                f"spec.roles[{index}].template.spec.containers[{found[0]}].args",
                f"Invalid value: --tensor-parallel-size {found[1]}: smaller than prefill role {widest_name}'s "
                f"{widest}; vLLM's NixlConnector needs decode tensor-parallel size >= prefill's (the KV "
                "handshake fails otherwise)",
            )
        )
    return errors


SGLANG_MODE_FLAG = "--disaggregation-mode"
SGLANG_BACKEND_FLAG = "--disaggregation-transfer-backend"
_MODES = {ComponentType.PREFILLER: "prefill", ComponentType.DECODER: "decode"}


def _sglang_serving(role: Role) -> tuple[int, dict[str, Any]] | None:
    spec = role.template.spec if role.template is not None else None
    return first_container_of((spec or {}).get("containers") or [], Engine.SGLANG)


def check_sglang_disaggregation(isvc: InferenceService) -> list[FieldError]:
    """An SGLang prefill role must run `--disaggregation-mode prefill`, a decode role `decode`,
    and both the same transfer backend: anything else never hands the KV cache over."""
    errors: list[FieldError] = []
    backends: dict[str, list[str]] = {}
    for index, role in enumerate(isvc.spec.roles):
        mode = _MODES.get(role.component_type)
        found = _sglang_serving(role) if mode is not None and role.engine is not Engine.VLLM else None
        if found is None:
            continue
        words = command_words(dict(found[1]))
        path = f"spec.roles[{index}].template.spec.containers[{found[0]}].args"
        given = flag_value(words, SGLANG_MODE_FLAG)
        if given is not None and given != mode:
            errors.append(
                FieldError(
                    path,
                    f"Invalid value: {SGLANG_MODE_FLAG} {given or '(no value)'}: role {role.name} is a "
                    f"{role.component_type.value}, so SGLang must run {SGLANG_MODE_FLAG} {mode} (or leave the "
                    "flag out and the operator adds it)",
                )
            )
        backend = flag_value(words, SGLANG_BACKEND_FLAG)
        if backend:
            backends.setdefault(backend, []).append(role.name)
    if len(backends) > 1:
        named = "; ".join(f"{b} on {', '.join(roles)}" for b, roles in sorted(backends.items()))
        errors.append(
            FieldError(
                "spec.roles",
                f"Invalid value: SGLang prefill and decode roles name different {SGLANG_BACKEND_FLAG} values "
                f"({named}); both ends of the KV transfer must use the same backend",
            )
        )
    return errors
