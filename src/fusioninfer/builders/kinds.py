"""Every kind of child object the operator creates, with what the API needs to address it.

The controller watches and prunes exactly these kinds (filtered by our managed-by label),
and the RBAC ClusterRole is generated from this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChildKind:
    api_version: str
    kind: str
    plural: str
    # Which optional API (a `Capabilities` field) must be installed; None for built-in kinds.
    capability: str | None = None
    # Apply order: lower first. Identity and config before the workloads that use them,
    # PodGroups before the pods that join them, routes after their backends.
    order: int = 50

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("v1", "ServiceAccount", "serviceaccounts", order=10),
    ChildKind("rbac.authorization.k8s.io/v1", "Role", "roles", order=11),
    ChildKind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", order=12),
    ChildKind("v1", "ConfigMap", "configmaps", order=20),
    ChildKind("scheduling.volcano.sh/v1beta1", "PodGroup", "podgroups", capability="volcano", order=30),
    ChildKind("v1", "Service", "services", order=40),
    ChildKind("apps/v1", "Deployment", "deployments", order=50),
    ChildKind("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "leaderworkersets", capability="lws", order=51),
    # Autoscalers after the workloads they scale.
    ChildKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", order=55),
    ChildKind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects", capability="keda", order=56),
    ChildKind(
        "inference.networking.k8s.io/v1", "InferencePool", "inferencepools", capability="inference_pool", order=60
    ),
    ChildKind("gateway.networking.k8s.io/v1", "Gateway", "gateways", capability="gateway_api", order=70),
    ChildKind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", capability="gateway_api", order=71),
)

_BY_KEY = {(k.api_version, k.kind): k for k in CHILD_KINDS}


def child_kind(api_version: str, kind: str) -> ChildKind:
    """The table entry of a manifest's kind; a builder emitting an unlisted kind is a bug."""
    return _BY_KEY[(api_version, kind)]


def sort_key(manifest: dict[str, object]) -> tuple[int, str, str]:
    entry = child_kind(str(manifest["apiVersion"]), str(manifest["kind"]))
    meta = manifest.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    return entry.order, entry.kind, name
