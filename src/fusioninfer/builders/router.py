"""The router role -> endpoint picker, InferencePool, HTTPRoute (and Gateway).

Placeholder: filled in by the intelligent-routing work (issue 5).
"""

from __future__ import annotations

from fusioninfer.builders.context import BuildContext, Manifest


def build(ctx: BuildContext) -> list[Manifest]:
    return []
