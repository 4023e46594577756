"""A single-node serving role -> one apps/v1 Deployment `{service}-{role}`.

Deployment (not StatefulSet, as the design proposal first said, nor one LWS per replica, as
the Go original does) because it gives surge/unavailable rolling updates and needs nothing
installed. The default budget (maxSurge 0, maxUnavailable 1) makes progress on a cluster with
no spare GPU: an old pod goes before its replacement needs the accelerator.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import autoscaler
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podtemplate import PodPart, serving_pod_template

DEFAULT_MAX_SURGE: int | str = 0
DEFAULT_MAX_UNAVAILABLE: int | str = 1


def rolling_update(role: Role) -> dict[str, Any]:
    rollout = role.rollout
    surge = rollout.max_surge if rollout and rollout.max_surge is not None else DEFAULT_MAX_SURGE
    unavailable = (
        rollout.max_unavailable if rollout and rollout.max_unavailable is not None else DEFAULT_MAX_UNAVAILABLE
    )
    return {"maxSurge": surge, "maxUnavailable": unavailable}


def build_deployment(ctx: BuildContext, role: Role) -> Manifest:
    count = autoscaler.replicas(ctx, role)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(naming.workload_name(ctx.name, role.name), ctx.role_labels(role)),
        "spec": {
            # Left out while an autoscaler owns the count: its /scale writes must stand.
            **({"replicas": count} if count is not None else {}),
            "selector": {"matchLabels": ctx.role_selector(role)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update(role)},
            "template": serving_pod_template(ctx, role, PodPart.SINGLE),
        },
    }


def build(ctx: BuildContext) -> list[Manifest]:
    return [build_deployment(ctx, role) for role in ctx.isvc.serving_roles if not role.is_multinode]
