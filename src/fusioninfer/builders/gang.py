"""Gang scheduling: which roles must start together, and the pod side of it (scheduler, PodGroup
membership annotations, priority). The PodGroup object itself is built in `podgroup`.

Why: a multi-node replica is useless until all of its pods run, and a P/D service is useless
until both prefill and decode run. With the default scheduler, two such services on a full
cluster can each grab half of the GPUs they need and wait for each other forever. A Volcano
PodGroup makes the scheduler place all `minMember` pods at once, or none.

When a PodGroup is emitted (`plan`, used by `podgroup` and by `decorate` alike):
* `gangScheduling: Disabled` -> never.
* `gangScheduling: Enabled` or `schedulerName: volcano` (an explicit request) -> always, covering
  every serving role (the user asked for all of the service to start together).
* `Auto` (the default), no scheduler named -> for a P/D service (its prefiller and decoder roles)
  or a service with multi-node roles (those roles), when Volcano is installed.
* `Auto` with another scheduler named -> never: gang scheduling needs Volcano's scheduler, and the
  user chose a different one.
Roles whose workload cannot be created (a multi-node role without LeaderWorkerSet) are left out:
pods that never appear would hold every other member Pending.

If Volcano is requested but not installed, nothing Volcano-specific is written (no PodGroup, no
`schedulerName: volcano`: no scheduler would ever bind those pods), and a `PrerequisitesMet`
notice says how to install it. A service that stops needing gang scheduling stops emitting the
PodGroup, and the controller prunes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import ComponentType, GangScheduling, Role, SchedulingStrategy
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podparts import PodPart, add_annotations

VOLCANO = "volcano"
DEFAULT_QUEUE = "default"

# How a pod joins a PodGroup, and which `minTaskMember` entry it counts towards.
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"
TASK_SPEC_ANNOTATION = "volcano.sh/task-spec"
# The queue of the PodGroup Volcano creates by itself for a pod outside any PodGroup.
QUEUE_NAME_ANNOTATION = "scheduling.volcano.sh/queue-name"


@dataclass(frozen=True)
class GangPlan:
    """What gang scheduling means for one service, computed once from spec and capabilities."""

    # Roles whose pods join the PodGroup; empty means no PodGroup.
    members: tuple[Role, ...]
    # Scheduler for serving pods outside the PodGroup (None: leave the template's choice).
    scheduler_name: str | None
    queue: str
    priority_class_name: str | None
    # Volcano was asked for explicitly but is not installed.
    volcano_missing: bool

    @property
    def member_names(self) -> frozenset[str]:
        return frozenset(role.name for role in self.members)


def plan(ctx: BuildContext) -> GangPlan:
    strategy = ctx.isvc.spec.scheduling_strategy or SchedulingStrategy()
    mode = strategy.gang_scheduling or GangScheduling.AUTO
    named = strategy.scheduler_name
    explicit = named == VOLCANO or mode is GangScheduling.ENABLED
    installed = ctx.capabilities.volcano

    buildable = [r for r in ctx.isvc.serving_roles if ctx.capabilities.lws or not r.is_multinode]
    candidates: list[Role]
    if mode is GangScheduling.DISABLED:
        candidates = []
    elif explicit:
        candidates = buildable
    elif named is not None:
        candidates = []
    elif ctx.isvc.is_disaggregated:
        candidates = [r for r in buildable if r.component_type in (ComponentType.PREFILLER, ComponentType.DECODER)]
    else:
        candidates = [r for r in buildable if r.is_multinode]

    return GangPlan(
        members=tuple(candidates) if installed else (),
        scheduler_name=None if named == VOLCANO and not installed else named,
        queue=strategy.queue or DEFAULT_QUEUE,
        priority_class_name=strategy.priority_class_name,
        volcano_missing=explicit and not installed,
    )


def decorate(ctx: BuildContext, role: Role, template: Manifest, part: PodPart) -> Manifest:
    """Scheduler, PodGroup membership and priority of a serving pod template."""
    if role.is_router:
        # The endpoint picker is not part of the serving topology: the default scheduler is fine.
        return template
    gang = plan(ctx)
    spec = template.setdefault("spec", {})
    if role.name in gang.member_names:
        # Members must be bound by Volcano, whatever the template says, or the group never forms.
        spec["schedulerName"] = VOLCANO
        add_annotations(
            template,
            {GROUP_NAME_ANNOTATION: naming.podgroup_name(ctx.name), TASK_SPEC_ANNOTATION: role.name},
        )
    elif gang.scheduler_name is not None and "schedulerName" not in spec:
        spec["schedulerName"] = gang.scheduler_name
        if gang.scheduler_name == VOLCANO:
            add_annotations(template, {QUEUE_NAME_ANNOTATION: gang.queue})
    if gang.priority_class_name is not None and "priorityClassName" not in spec:
        spec["priorityClassName"] = gang.priority_class_name
    return template
