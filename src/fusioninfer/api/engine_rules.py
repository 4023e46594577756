"""Rules an engine release enforces at start-up, checked against the version in the image tag.

vLLM's multiprocessing (`mp`) backend across nodes needs `--nnodes`, `--node-rank`,
`--master-addr` and `--master-port`, which arrived in vLLM 0.11.1 (read from the 0.11.0 and
0.11.1 wheels' `vllm/engine/arg_utils.py`). On 0.11.0, the release every example pins, its
argument parser exits on them, the leader pod dies, and LeaderWorkerSet recreates the group in
a loop. Refused here with the field path and the way out (Ray, which LWS's own vLLM example
uses, or a newer image).

An image without a version tag (digest, `latest`), or not a vLLM image (the llm-d simulator's
tag is its own version), is taken as current: nothing is refused.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api.command import command_words, detect_engine, first_container_of, flag_value, has_flag
from fusioninfer.api.errors import FieldError
from fusioninfer.api.images import dotted, image_version
from fusioninfer.api.v1alpha1 import Engine, InferenceService, MultinodeBackend, Role

VLLM_MP_MULTINODE_SINCE = (0, 11, 1)
MP_MULTINODE_FLAGS = ("--nnodes", "--node-rank", "--master-addr", "--master-port")


def _vllm_container(role: Role) -> tuple[int, dict[str, Any]] | None:
    spec = role.template.spec if role.template is not None else None
    return first_container_of((spec or {}).get("containers") or [], Engine.VLLM)


def _mp_source(index: int, role: Role, container_index: int, words: list[str]) -> str | None:
    """The field that asks for vLLM's mp multi-node start-up, or None when nothing does."""
    args = f"spec.roles[{index}].template.spec.containers[{container_index}]"
    if has_flag(words, *MP_MULTINODE_FLAGS):
        return f"{args}.args"
    given = flag_value(words, "--distributed-executor-backend")
    rewrite = role.multinode is None or role.multinode.rewrite_command is not False
    if given == "mp":
        return f"{args}.args" if rewrite else None
    if given is None and rewrite and role.multinode is not None and role.multinode.backend is MultinodeBackend.MP:
        return f"spec.roles[{index}].multinode.backend"
    return None


def check_vllm_multinode_backend(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, role in enumerate(isvc.spec.roles):
        if role.is_router or not role.is_multinode or role.engine is Engine.SGLANG:
            continue
        found = _vllm_container(role)
        if found is None:
            continue
        container_index, container = found
        image = str(container.get("image", ""))
        # Only a vLLM image's tag is a vLLM version (the llm-d simulator's is its own).
        version = image_version(image) if "vllm" in image.rsplit("/", 1)[-1].split(":", 1)[0] else None
        if version is None or version >= VLLM_MP_MULTINODE_SINCE:
            continue
        path = _mp_source(index, role, container_index, command_words(dict(container)))
        if path is None:
            continue
        errors.append(
            FieldError(
                path,
                f"Invalid value: vLLM {dotted(version)} ({image}) has no multi-node mp backend: "
                f"{', '.join(MP_MULTINODE_FLAGS)} arrived in vLLM {dotted(VLLM_MP_MULTINODE_SINCE)} and its "
                "argument parser exits on them (LeaderWorkerSet would recreate the group forever); use "
                "multinode.backend: ray (the default, as LWS's vLLM example) or a vLLM image v0.11.1 or newer",
            )
        )
    return errors


TP_FLAGS = ("--tensor-parallel-size", "-tp", "--tp-size")
PP_FLAGS = ("--pipeline-parallel-size", "-pp", "--pp-size")
DP_FLAGS = ("--data-parallel-size", "-dp", "--dp-size")
GPU = "nvidia.com/gpu"


def _int_flag(words: list[str], names: tuple[str, ...]) -> int | None:
    value = flag_value(words, *names)
    return int(value) if value is not None and value.isdigit() else None


def _gpus(container: dict[str, object]) -> int | None:
    resources = container.get("resources")
    limits = resources.get("limits") if isinstance(resources, dict) else None
    value = limits.get(GPU) if isinstance(limits, dict) else None
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def check_parallelism_fits_the_gpus(isvc: InferenceService) -> list[FieldError]:
    """Tensor x pipeline parallel ranks must use exactly the GPUs of one replica (GPUs per pod x
    pods per replica): TP 32 over 4 nodes x 8 GPUs is right, TP 16 leaves half of them idle and
    TP 64 cannot start. Checked where the GPUs and TP or PP are given; data parallelism (which
    multiplies ranks in engine-specific ways) is left to the engine."""
    errors: list[FieldError] = []
    for index, role in enumerate(isvc.spec.roles):
        spec = role.template.spec if role.template is not None and not role.is_router else None
        for position, container in enumerate((spec or {}).get("containers") or []):
            if not isinstance(container, dict) or detect_engine(container) is None:
                continue
            words = command_words(container)
            tp, pp = _int_flag(words, TP_FLAGS), _int_flag(words, PP_FLAGS)
            gpus = _gpus(container)
            if gpus is None or (tp is None and pp is None) or flag_value(words, *DP_FLAGS) is not None:
                break
            ranks, available = (tp or 1) * (pp or 1), gpus * role.node_count
            if ranks != available:
                given = role.engine_args or {}
                where = next(
                    (f"spec.roles[{index}].engineArgs[{k}]" for k in ("tensor-parallel-size", "pipeline-parallel-size")
                     if k in given),
                    f"spec.roles[{index}].template.spec.containers[{position}].args",
                )  # fmt: skip
                errors.append(
                    FieldError(
                        where,
                        f"Invalid value: tensor-parallel {tp or 1} x pipeline-parallel {pp or 1} = {ranks} ranks, but "
                        f"a replica has {available} GPUs ({gpus} {GPU} per pod x {role.node_count} pods): they must "
                        "be equal",
                    )
                )
            break
    return errors
