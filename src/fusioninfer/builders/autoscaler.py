"""HorizontalPodAutoscaler / KEDA ScaledObject per autoscaled role.

Who owns the replica count of an autoscaled (or `ratioTo`-following) workload, and why the
workload is then applied without `spec.replicas`, is in `workload.replicas`. A `ratioTo` role
gets no autoscaler of its own: the operator applies its count on every change of the other
role's.
"""

from __future__ import annotations

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


def _hpa(ctx: BuildContext, role: Role, scaling: Autoscaling) -> Manifest:
    spec: dict[str, Any] = {
        "scaleTargetRef": scale_target(ctx, role),
        "minReplicas": scaling.effective_min,
        "maxReplicas": scaling.max_replicas,
        "metrics": scaling.metrics,
    }
    if scaling.behavior is not None:
        spec["behavior"] = scaling.behavior
    return _autoscaler(ctx, role, "autoscaling/v2", "HorizontalPodAutoscaler", spec)


def _scaled_object(ctx: BuildContext, role: Role, scaling: Autoscaling) -> Manifest:
    spec: dict[str, Any] = {
        "scaleTargetRef": scale_target(ctx, role),
        "minReplicaCount": scaling.effective_min,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": scaling.triggers,
    }
    if scaling.behavior is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": scaling.behavior}}
    return _autoscaler(ctx, role, "keda.sh/v1alpha1", "ScaledObject", spec)


def _autoscaler(ctx: BuildContext, role: Role, api_version: str, kind: str, spec: dict[str, Any]) -> Manifest:
    """An autoscaler of `role`, named after the workload it scales."""
    return {
        "apiVersion": api_version,
        "kind": kind,
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
