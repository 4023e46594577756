"""What every serving workload kind (Deployment, LeaderWorkerSet) shares: the replica count it
applies and its rolling-update budget.

Kept below the workload modules so that `deployment` and `leaderworkerset` do not reach
sideways into each other or into `autoscaler` for these.

Who owns replica counts: an autoscaled role's Deployment or LeaderWorkerSet is applied
*without* `spec.replicas`: the autoscaler writes it through the `/scale` subresource (an LWS
scales groups), and since the operator's field manager no longer claims the field, those
writes stand and no write loop starts. `replicas` comes back into the applied object when
autoscaling is removed.

A role with `autoscaling.ratioTo` follows another autoscaled role: its count is that role's
live replica count (read from the cluster into `BuildOptions.live_replicas`) times the ratio,
rounded up, applied by the operator on every change of the other role's count.

The default budget (maxSurge 0, maxUnavailable 1) makes progress on a cluster with no spare
GPU: an old pod goes before its replacement needs the accelerator.
"""

from __future__ import annotations

import math
from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext

DEFAULT_MAX_SURGE: int | str = 0
DEFAULT_MAX_UNAVAILABLE: int | str = 1


def replicas(ctx: BuildContext, role: Role) -> int | None:
    """The replica count the operator applies; None when an autoscaler owns it."""
    scaling = role.autoscaling
    if scaling is None:
        return role.effective_replicas
    if scaling.ratio_to is None:
        return None
    leader = next((r for r in ctx.isvc.serving_roles if r.name == scaling.ratio_to.role), None)
    if leader is None or leader.autoscaling is None:
        return role.effective_replicas  # validation refuses this; keep a sane count anyway
    live = ctx.options.live_replicas.get(naming.workload_name(ctx.name, leader.name))
    followed = live if live is not None else max(leader.autoscaling.effective_min, 1)
    mine, theirs = scaling.ratio_to.parts()
    return math.ceil(followed * mine / theirs)


def rolling_update(role: Role) -> dict[str, Any]:
    """The role's surge/unavailable budget (a Deployment's pods, an LWS's groups)."""
    rollout = role.rollout
    surge = rollout.max_surge if rollout and rollout.max_surge is not None else DEFAULT_MAX_SURGE
    unavailable = (
        rollout.max_unavailable if rollout and rollout.max_unavailable is not None else DEFAULT_MAX_UNAVAILABLE
    )
    return {"maxSurge": surge, "maxUnavailable": unavailable}
