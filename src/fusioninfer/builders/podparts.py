"""The bottom of the pod-template stack: which pods a template is for, the user's template with
our labels, and the two metadata helpers every pod decorator uses.

Kept apart from `podtemplate` (which applies the decorators in order) so that the decorators
(`pd`, `gang`, `multinode`, `engine_flags`, `probes`) can import what they share from below,
and `podtemplate` can import them in turn without an import cycle.

The user's `template.metadata.labels/annotations` are kept and merged (the original Go
operator dropped them).
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


def add_labels(template: Manifest, labels: dict[str, str]) -> None:
    """Merge `labels` over the template's own, keeping the keys sorted (stable diffs)."""
    meta = template.setdefault("metadata", {})
    meta["labels"] = dict(sorted({**meta.get("labels", {}), **labels}.items()))


def add_annotations(template: Manifest, annotations: dict[str, str]) -> None:
    """Merge `annotations` over the template's own, keeping the keys sorted (stable diffs)."""
    meta = template.setdefault("metadata", {})
    meta["annotations"] = dict(sorted({**meta.get("annotations", {}), **annotations}.items()))
