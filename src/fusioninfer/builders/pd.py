"""Prefill/decode wiring of serving pods (labels for the picker's filters, routing sidecar).

Placeholder: filled in by the intelligent-routing work (issue 5).
"""

from __future__ import annotations

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podtemplate import PodPart


def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    return template
