"""A single-node serving role -> one apps/v1 Deployment `{service}-{role}`.

Deployment (not StatefulSet, as the design proposal first said, nor one LWS per replica, as
the Go original does) because it gives surge/unavailable rolling updates and needs nothing
installed. The replica count and the rolling-update budget are shared with the LeaderWorkerSet
(see `workload`).
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.podtemplate import serving_pod_template
from fusioninfer.builders.workload import replicas, rolling_update


def build_deployment(ctx: BuildContext, role: Role) -> Manifest:
    count = replicas(ctx, role)
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
