"""The conditions an InferenceService takes from its children's own status: RouteReady from the
HTTPRoute (and other services' routes on the same Gateway), GangScheduled from the PodGroup.

Each one passes on the child's controller's own words (the Gateway's reason, Volcano's
message), since they say why better than anything the operator could guess; None means the
service has no such child, so no such condition.
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.builders import BuildResult
from fusioninfer.controller import conditions as C
from fusioninfer.controller.components import Observed
from fusioninfer.controller.conditions import Cond
from fusioninfer.controller.route_conflicts import conflicts
from fusioninfer.kube.conditions import find_condition


def route_condition(isvc: InferenceService, observed: Observed) -> Cond | None:
    if isvc.router is None:
        return None
    name = naming.route_name(isvc.name)
    route = observed.get("HTTPRoute", name)
    if route is None:
        return Cond(C.ROUTE_READY, "False", "RouteNotCreated", f"HTTPRoute {name} does not exist yet")
    clashes = conflicts(route, observed.peer_routes)
    if clashes:
        model, other, gateway = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        return Cond(
            C.ROUTE_READY,
            "False",
            "ModelNameConflict",
            f"model {model!r} is already routed to InferenceService {other} on Gateway {gateway}{more}: the "
            f"Gateway gives each request for it to the older route, so this service would get none; serve "
            f"another model name (model.servedName / --served-model-name) or use another Gateway",
        )
    parents = (route.get("status") or {}).get("parents") or []
    if not parents:
        return Cond(
            C.ROUTE_READY,
            "Unknown",
            "NoParentStatus",
            f"no Gateway has reported on HTTPRoute {name} yet: is a Gateway implementation with "
            "InferencePool support installed, and does the parentRef name an existing Gateway?",
        )
    problems = []
    for parent in parents:
        ref = parent.get("parentRef", {})
        where = f"{ref.get('kind', 'Gateway')} {ref.get('name', '?')}"
        accepted = find_condition(parent.get("conditions"), "Accepted")
        resolved = find_condition(parent.get("conditions"), "ResolvedRefs")
        if accepted and accepted.get("status") == "True" and (not resolved or resolved.get("status") == "True"):
            return Cond(C.ROUTE_READY, "True", "Accepted", f"HTTPRoute {name} accepted by {where}")
        bad = resolved if accepted and accepted.get("status") == "True" else accepted
        reason = (bad or {}).get("reason", "Pending")
        problems.append((reason, f"{where}: {reason}: {(bad or {}).get('message', '')}".rstrip(": ")))
    return Cond(C.ROUTE_READY, "False", problems[0][0], "; ".join(p[1] for p in problems))


def gang_condition(isvc: InferenceService, result: BuildResult, observed: Observed) -> Cond | None:
    wanted = next((o for o in result.objects if o["kind"] == "PodGroup"), None)
    if wanted is None:
        return None
    name = wanted["metadata"]["name"]
    live = observed.get("PodGroup", name)
    status = (live or {}).get("status") or {}
    phase = status.get("phase")
    # Placed means Running (at least minMember pods bound) or done. Inqueue only means the queue
    # admitted the group: its pods may still all be Pending, so it is not "scheduled".
    if phase in ("Running", "Completed"):
        return Cond(C.GANG_SCHEDULED, "True", phase, f"PodGroup {name} is {phase}")
    # The scheduler's own words come first: they say why the gang is not placed.
    unschedulable = find_condition(status.get("conditions"), "Unschedulable")
    if unschedulable and unschedulable.get("status") == "True":
        return Cond(
            C.GANG_SCHEDULED,
            "False",
            "Unschedulable",
            f"PodGroup {name}: {unschedulable.get('message') or unschedulable.get('reason') or 'unschedulable'}",
        )
    if phase == "Inqueue":
        return Cond(
            C.GANG_SCHEDULED,
            "False",
            "Inqueue",
            f"PodGroup {name} is admitted to its queue; waiting for the scheduler to place all its pods",
        )
    if phase:
        return Cond(C.GANG_SCHEDULED, "False", str(phase), f"PodGroup {name} is {phase}")
    return Cond(
        C.GANG_SCHEDULED, "Unknown", "NoStatus", f"Volcano has not reported on PodGroup {name} yet (is it running?)"
    )
