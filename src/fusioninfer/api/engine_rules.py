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

from fusioninfer.api.command import command_words, detect_engine, flag_value, has_flag
from fusioninfer.api.errors import FieldError
from fusioninfer.api.images import dotted, image_version
from fusioninfer.api.v1alpha1 import Engine, InferenceService, MultinodeBackend, Role

VLLM_MP_MULTINODE_SINCE = (0, 11, 1)
MP_MULTINODE_FLAGS = ("--nnodes", "--node-rank", "--master-addr", "--master-port")


def _vllm_container(role: Role) -> tuple[int, dict[str, object]] | None:
    spec = role.template.spec if role.template is not None else None
    for index, container in enumerate((spec or {}).get("containers") or []):
        if isinstance(container, dict) and detect_engine(container) is Engine.VLLM:
            return index, container
    return None


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
