"""One Volcano PodGroup per service, for the roles that must start together (see `gang` for
why, and for which roles `gang.plan` makes members).

`minMember` / `minTaskMember` count every member pod, and `minResources` is what all of them
reserve, read from the final pod templates (sidecars included), so the scheduler admits the
whole group or none of it. If Volcano is requested but not installed, no PodGroup is emitted
and a `PrerequisitesMet` notice says how to install it.
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import resources
from fusioninfer.builders.context import BuildContext, Manifest, Notice
from fusioninfer.builders.gang import GangPlan, plan
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.podtemplate import serving_pod_template

PODGROUP_API_VERSION = "scheduling.volcano.sh/v1beta1"
PODGROUP_KIND = "PodGroup"
VOLCANO_INSTALL = (
    "kubectl apply -f https://raw.githubusercontent.com/volcano-sh/volcano/v1.13.1/installer/volcano-development.yaml"
)

PREREQUISITES_MET = "PrerequisitesMet"
MISSING_APIS = "MissingAPIs"


def role_pods(role: Role) -> int:
    return role.effective_replicas * role.node_count


def role_requests(ctx: BuildContext, role: Role) -> resources.Resources:
    """What all pods of a role reserve, from the final pod templates (sidecars included)."""
    replicas = role.effective_replicas
    if not role.is_multinode:
        single = serving_pod_template(ctx, role, PodPart.SINGLE)
        return resources.scale(resources.pod_requests(single["spec"]), replicas)
    leader = serving_pod_template(ctx, role, PodPart.LEADER)
    worker = serving_pod_template(ctx, role, PodPart.WORKER)
    return resources.add(
        resources.scale(resources.pod_requests(leader["spec"]), replicas),
        resources.scale(resources.pod_requests(worker["spec"]), replicas * (role.node_count - 1)),
    )


def build_podgroup(ctx: BuildContext, gang: GangPlan) -> Manifest:
    members = sorted(gang.members, key=lambda r: r.name)
    spec: Manifest = {
        "minMember": sum(role_pods(role) for role in members),
        "minTaskMember": {role.name: role_pods(role) for role in members},
        "queue": gang.queue,
    }
    total = resources.add(*(role_requests(ctx, role) for role in members))
    # Zero entries (a role scaled to 0) say nothing to the scheduler; leave them out.
    min_resources = {name: quantity for name, quantity in total.items() if quantity.nanos}
    if min_resources:
        spec["minResources"] = resources.to_manifest(min_resources)
    if gang.priority_class_name is not None:
        spec["priorityClassName"] = gang.priority_class_name
    return {
        "apiVersion": PODGROUP_API_VERSION,
        "kind": PODGROUP_KIND,
        "metadata": ctx.metadata(naming.podgroup_name(ctx.name), ctx.service_labels()),
        "spec": spec,
    }


def build(ctx: BuildContext) -> list[Manifest]:
    gang = plan(ctx)
    if gang.volcano_missing:
        message = (
            "Volcano (scheduling.volcano.sh/v1beta1 PodGroup) is not installed, so the gang scheduling asked "
            "for in spec.schedulingStrategy is not applied and the pods use the default scheduler; install "
            f"Volcano v1.13.1: {VOLCANO_INSTALL}"
        )
        if Notice(PREREQUISITES_MET, MISSING_APIS, message) not in ctx.notices:
            ctx.notice(PREREQUISITES_MET, MISSING_APIS, message)
    if not gang.members:
        return []
    return [build_podgroup(ctx, gang)]
