"""The pod template of a serving role: the user's template plus everything we add.

The user's `template.metadata.labels/annotations` are kept and merged (the original Go
operator dropped them). Decorators from other builders (P/D wiring, gang scheduling,
multi-node start-up) are applied in a fixed order so every workload kind gets the same pods.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest, deep_copy


class PodPart(StrEnum):
    """Which pods of a role a template is for."""

    SINGLE = "single"  # a Deployment's pods
    LEADER = "leader"  # multi-node: the leader (rank 0, serves HTTP)
    WORKER = "worker"  # multi-node: the other ranks


def base_pod_template(ctx: BuildContext, role: Role) -> Manifest:
    """User template (deep-copied) with our labels merged over the user's."""
    template = role.template
    user_meta: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if template is not None:
        if template.metadata is not None:
            user_meta = template.metadata.model_dump(exclude_none=True)
        spec = deep_copy(template.spec or {})
    labels = {**(user_meta.get("labels") or {}), **ctx.role_labels(role)}
    meta: Manifest = {"labels": dict(sorted(labels.items()))}
    annotations = user_meta.get("annotations")
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return {"metadata": meta, "spec": spec}


def serving_pod_template(ctx: BuildContext, role: Role, part: PodPart = PodPart.SINGLE) -> Manifest:
    """The complete pod template for `part` of a serving role."""
    # Imported here: these modules import PodPart from this one.
    from fusioninfer.builders import engine_flags, gang, multinode, pd, probes

    template = base_pod_template(ctx, role)
    template = pd.decorate(ctx, role, template, part)
    template = gang.decorate(ctx, role, template, part)
    # Engine start-up: multi-node flags for leaders/workers, the listen address for SGLang.
    template = multinode.decorate(ctx, role, template, part)
    # What the router needs from the engine: SGLang's metrics endpoint.
    template = engine_flags.decorate(ctx, role, template, part)
    # Last: probes check the port the engine listens on once everything above is applied.
    return probes.decorate(ctx, role, template, part)


def add_labels(template: Manifest, labels: dict[str, str]) -> None:
    meta = template.setdefault("metadata", {})
    meta["labels"] = dict(sorted({**meta.get("labels", {}), **labels}.items()))


def add_annotations(template: Manifest, annotations: dict[str, str]) -> None:
    meta = template.setdefault("metadata", {})
    meta["annotations"] = dict(sorted({**meta.get("annotations", {}), **annotations}.items()))
