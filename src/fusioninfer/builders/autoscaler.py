"""HorizontalPodAutoscaler / KEDA ScaledObject per autoscaled role, and who owns replica counts.

An autoscaled role's Deployment or LeaderWorkerSet is applied *without* `spec.replicas`: the
autoscaler writes it through the `/scale` subresource (an LWS scales groups), and since the
operator's field manager no longer claims the field, those writes stand and no write loop
starts. `replicas` comes back into the applied object when autoscaling is removed.

A role with `autoscaling.ratioTo` follows another autoscaled role: its count is that role's
live replica count (read from the cluster into `BuildOptions.live_replicas`) times the ratio,
rounded up, applied by the operator on every change of the other role's count.
"""

from __future__ import annotations

import math
from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.autoscaling_spec import Autoscaling, AutoscalingProvider
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest

PREREQUISITES = "PrerequisitesMet"
KEDA_INSTALL = "helm install keda kedacore/keda --namespace keda --create-namespace (KEDA v2.21)"


def scale_target(ctx: BuildContext, role: Role) -> dict[str, str]:
    if role.is_multinode:
        return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                "name": naming.workload_name(ctx.name, role.name)}  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": naming.workload_name(ctx.name, role.name)}


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


def _hpa(ctx: BuildContext, role: Role, scaling: Autoscaling) -> Manifest:
    spec: dict[str, Any] = {
        "scaleTargetRef": scale_target(ctx, role),
        "minReplicas": scaling.effective_min,
        "maxReplicas": scaling.max_replicas,
        "metrics": scaling.metrics,
    }
    if scaling.behavior is not None:
        spec["behavior"] = scaling.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.metadata(naming.workload_name(ctx.name, role.name), ctx.role_labels(role)),
        "spec": spec,
    }


def _scaled_object(ctx: BuildContext, role: Role, scaling: Autoscaling) -> Manifest:
    spec: dict[str, Any] = {
        "scaleTargetRef": scale_target(ctx, role),
        "minReplicaCount": scaling.effective_min,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": scaling.triggers,
    }
    if scaling.behavior is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": scaling.behavior}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": ctx.metadata(naming.workload_name(ctx.name, role.name), ctx.role_labels(role)),
        "spec": spec,
    }


def build(ctx: BuildContext) -> list[Manifest]:
    out: list[Manifest] = []
    for role in ctx.isvc.serving_roles:
        scaling = role.autoscaling
        if scaling is None or scaling.ratio_to is not None:
            continue
        if role.is_multinode and not ctx.capabilities.lws:
            continue  # no LeaderWorkerSet to scale (PrerequisitesMet already says why)
        if scaling.effective_provider is AutoscalingProvider.HPA:
            out.append(_hpa(ctx, role, scaling))
        elif ctx.capabilities.keda:
            out.append(_scaled_object(ctx, role, scaling))
        else:
            ctx.notice(
                PREREQUISITES,
                "MissingAPIs",
                f"role {role.name}: autoscaling with provider keda needs KEDA's ScaledObject CRD "
                f"(scaledobjects.keda.sh); not deployed: ScaledObject. Install KEDA: {KEDA_INSTALL}. "
                "Until then the workload keeps the replica count the cluster has.",
            )
    return out
