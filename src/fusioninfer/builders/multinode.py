"""Multi-node roles -> one LeaderWorkerSet, with engine-aware leader/worker commands.

Placeholder: filled in by the multi-node work (issue 6).
"""

from __future__ import annotations

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podtemplate import PodPart


def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    return template


def build(ctx: BuildContext) -> list[Manifest]:
    return []
