"""The pod template of a serving role: the user's template plus everything we add.

The layer between the pod decorators (below: `pd`, `gang`, `multinode`, `engine_flags`,
`probes`, all built on `podparts`) and the workload kinds that embed pods (above:
`deployment`, `leaderworkerset`, `podgroup`). Decorators are applied in a fixed order so every
workload kind gets the same pods.
"""

from __future__ import annotations

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import engine_flags, gang, multinode, pd, probes
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podparts import PodPart, base_pod_template


def serving_pod_template(ctx: BuildContext, role: Role, part: PodPart = PodPart.SINGLE) -> Manifest:
    """The complete pod template for `part` of a serving role."""
    template = base_pod_template(ctx, role)
    template = pd.decorate(ctx, role, template, part)
    template = gang.decorate(ctx, role, template, part)
    # Engine start-up: multi-node flags for leaders/workers, the listen address for SGLang.
    template = multinode.decorate(ctx, role, template, part)
    # What the router needs from the engine: SGLang's metrics endpoint.
    template = engine_flags.decorate(ctx, role, template, part)
    # Last: probes check the port the engine listens on once everything above is applied.
    return probes.decorate(ctx, role, template, part)
