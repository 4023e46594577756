"""Multi-node roles -> one LeaderWorkerSet each, running the leader/worker pods of `multinode`.

One LWS per role (not one per replica, as the Go original does): `replicas` groups of
`nodeCount` pods, so a rolling update replaces one whole group at a time under the role's
surge/unavailable budget, and the LWS scale subresource still means "replicas of this role".

Every field the LWS webhook would default is written out (`startupPolicy`, `restartPolicy`,
`rolloutStrategy`, `networkConfig`), so what we apply is what the apiserver stores and a
server-side-apply comparison never sees a phantom difference.
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.podtemplate import serving_pod_template
from fusioninfer.builders.workload import replicas, rolling_update

LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_KIND = "LeaderWorkerSet"
LWS_INSTALL = "kubectl create -f https://github.com/kubernetes-sigs/lws/releases/download/v0.7.0/manifests.yaml"

PREREQUISITES_MET = "PrerequisitesMet"
MISSING_APIS = "MissingAPIs"


def build_leaderworkerset(ctx: BuildContext, role: Role) -> Manifest:
    budget = rolling_update(role)
    partition = role.rollout.partition if role.rollout and role.rollout.partition is not None else 0
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": LWS_KIND,
        "metadata": ctx.metadata(naming.workload_name(ctx.name, role.name), ctx.role_labels(role)),
        "spec": {
            # Left out while an autoscaler owns the count (it scales groups through /scale).
            **({"replicas": count} if (count := replicas(ctx, role)) is not None else {}),
            # LeaderCreated, not LeaderReady: the leader only turns Ready once its workers have
            # joined, and under gang scheduling no pod runs before all exist.
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {
                    "maxUnavailable": budget["maxUnavailable"],
                    "maxSurge": budget["maxSurge"],
                    "partition": partition,
                },
            },
            "networkConfig": {"subdomainPolicy": "Shared"},
            "leaderWorkerTemplate": {
                "size": role.node_count,
                # A lost pod breaks the collective (NCCL/Ray) of its group: restart the group.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": serving_pod_template(ctx, role, PodPart.LEADER),
                "workerTemplate": serving_pod_template(ctx, role, PodPart.WORKER),
            },
        },
    }


def build(ctx: BuildContext) -> list[Manifest]:
    roles = [role for role in ctx.isvc.serving_roles if role.is_multinode]
    if not roles:
        return []
    if not ctx.capabilities.lws:
        names = ", ".join(repr(role.name) for role in roles)
        ctx.notice(
            PREREQUISITES_MET,
            MISSING_APIS,
            f"LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) is not installed, so the multi-node "
            f"role(s) {names} are not deployed; install LeaderWorkerSet v0.7.0: {LWS_INSTALL}",
        )
        return []
    return [build_leaderworkerset(ctx, role) for role in roles]
