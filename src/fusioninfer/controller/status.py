"""Pure status computation: what the children report -> the InferenceService's status.

Inputs are the desired objects (from the builders) and the live objects (from the informer
caches); output is the complete `status` dict. No I/O, so every rule is unit-tested, and the
reconciler writes the result only when it differs from what is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.errors import FieldError
from fusioninfer.api.labels import LABEL_ROLE_NAME
from fusioninfer.api.v1alpha1 import ComponentPhase, InferenceService, Role, ServicePhase
from fusioninfer.builders import BuildResult
from fusioninfer.controller import conditions as C
from fusioninfer.controller.conditions import Cond
from fusioninfer.controller.route_conflicts import conflicts
from fusioninfer.kube.types import Obj

# Container states that will not get better by waiting: the role is Failed, not Deploying.
FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass
class Observed:
    """Live state relevant to one InferenceService, read from the caches."""

    # Live children by (kind, name).
    children: dict[tuple[str, str], Obj] = field(default_factory=dict)
    # Live pods of the service, any role.
    pods: list[Obj] = field(default_factory=list)
    # Errors from applying or pruning children in this reconcile.
    apply_errors: list[str] = field(default_factory=list)
    # Other services' HTTPRoutes in the namespace (for model-name conflicts on a Gateway).
    peer_routes: list[Obj] = field(default_factory=list)

    def get(self, kind: str, name: str) -> Obj | None:
        return self.children.get((kind, name))


def _int(obj: Obj | None, *path: str) -> int:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, dict):
            return 0
        cur = cur.get(key)
    return int(cur) if isinstance(cur, int) else 0


def pod_is_ready(pod: Obj) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def pod_failure(pod: Obj) -> str | None:
    """Why a pod cannot become ready by waiting, or None."""
    status = pod.get("status") or {}
    name = pod.get("metadata", {}).get("name", "?")
    if status.get("phase") == "Failed":
        return f"pod {name} failed: {status.get('reason') or status.get('message') or 'Failed'}"
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in FAILING_WAIT_REASONS:
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            return f"pod {name} container {cs.get('name')}: {waiting['reason']}{detail}"
    return None


def _condition(obj: Obj | None, type_: str) -> Obj | None:
    return C.find(((obj or {}).get("status") or {}).get("conditions"), type_)


@dataclass(frozen=True)
class ComponentView:
    """A role's computed status plus a human sentence about it."""

    role: str
    status: Obj
    summary: str
    failure: str | None = None


def _workload_for(role: Role, result: BuildResult) -> Obj | None:
    for obj in result.objects:
        labels = obj.get("metadata", {}).get("labels", {})
        if obj["kind"] in ("Deployment", "LeaderWorkerSet") and labels.get(LABEL_ROLE_NAME) == role.name:
            return obj
    return None


def _rolled_out(live: Obj, desired_replicas: int) -> bool:
    """The workload controller has seen the newest spec and every replica runs it."""
    status = live.get("status") or {}
    generation = live.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False
    if live["kind"] == "Deployment":
        return _int(live, "status", "updatedReplicas") >= desired_replicas and (
            _int(live, "status", "replicas") <= desired_replicas
        )
    if "updatedReplicas" in status:
        return _int(live, "status", "updatedReplicas") >= desired_replicas
    return True


def component_status(
    role: Role, result: BuildResult, observed: Observed, previous: Obj | None, now: str
) -> ComponentView:
    desired_obj = _workload_for(role, result)
    nodes = 1 if role.is_router else role.node_count
    live = observed.get(desired_obj["kind"], desired_obj["metadata"]["name"]) if desired_obj else None
    if desired_obj is None:
        desired = role.effective_replicas if not role.is_router else 1
    elif "replicas" not in desired_obj["spec"]:
        # Autoscaled: the count is what the autoscaler set on the live workload.
        desired = (
            _int(live, "spec", "replicas") if live else (role.autoscaling.effective_min if role.autoscaling else 1)
        )
    else:
        desired = int(desired_obj["spec"].get("replicas", 1))
    pods = [p for p in observed.pods if p.get("metadata", {}).get("labels", {}).get(LABEL_ROLE_NAME) == role.name]
    ready_replicas = min(_int(live, "status", "readyReplicas"), desired) if live else 0
    if pods or live is None or live["kind"] == "Deployment":
        ready_pods = sum(1 for p in pods if pod_is_ready(p)) if pods else ready_replicas * nodes
    else:
        ready_pods = ready_replicas * nodes
    ready_pods = min(ready_pods, desired * nodes)

    failures = [f for f in (pod_failure(p) for p in pods) if f]
    progress = _condition(live, "Progressing")
    if progress and progress.get("reason") == "ProgressDeadlineExceeded":
        failures.append(f"{live['kind'] if live else ''} {progress.get('message', 'progress deadline exceeded')}")

    if desired_obj is None:
        phase, summary = ComponentPhase.PENDING, "workload not built (see PrerequisitesMet)"
    elif live is None:
        phase, summary = ComponentPhase.PENDING, "workload not created yet"
    elif failures:
        phase, summary = ComponentPhase.FAILED, failures[0]
    elif ready_replicas >= desired and _rolled_out(live, desired):
        phase, summary = ComponentPhase.RUNNING, f"{ready_replicas}/{desired} replicas ready"
    elif ready_replicas >= desired:
        # Every replica serves, but not all run the newest spec yet: say that, or "1/1 ready"
        # would stand next to Ready=False.
        updated = min(_int(live, "status", "updatedReplicas"), desired)
        phase = ComponentPhase.DEPLOYING
        summary = f"{ready_replicas}/{desired} replicas ready, {updated}/{desired} updated (rolling out)"
    elif pods or _int(live, "status", "replicas") > 0 or ready_replicas > 0:
        phase, summary = ComponentPhase.DEPLOYING, f"{ready_replicas}/{desired} replicas ready"
    else:
        phase, summary = ComponentPhase.PENDING, f"0/{desired} replicas ready, no pods yet"

    status: Obj = {
        "desiredReplicas": desired,
        "readyReplicas": ready_replicas,
        "nodesPerReplica": nodes,
        "totalPods": desired * nodes,
        "readyPods": ready_pods,
        "phase": phase.value,
    }
    # lastUpdateTime moves only when something else changed: a status write per reconcile
    # would wake the controller again and again (the Go original's hot loop).
    unchanged = previous is not None and all(previous.get(k) == v for k, v in status.items())
    status["lastUpdateTime"] = previous.get("lastUpdateTime", now) if unchanged and previous else now
    return ComponentView(role.name, status, summary, failures[0] if failures else None)


def _route_condition(isvc: InferenceService, observed: Observed) -> Cond | None:
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
        accepted = C.find(parent.get("conditions"), "Accepted")
        resolved = C.find(parent.get("conditions"), "ResolvedRefs")
        if accepted and accepted.get("status") == "True" and (not resolved or resolved.get("status") == "True"):
            return Cond(C.ROUTE_READY, "True", "Accepted", f"HTTPRoute {name} accepted by {where}")
        bad = resolved if accepted and accepted.get("status") == "True" else accepted
        reason = (bad or {}).get("reason", "Pending")
        problems.append((reason, f"{where}: {reason}: {(bad or {}).get('message', '')}".rstrip(": ")))
    return Cond(C.ROUTE_READY, "False", problems[0][0], "; ".join(p[1] for p in problems))


def _gang_condition(isvc: InferenceService, result: BuildResult, observed: Observed) -> Cond | None:
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
    unschedulable = C.find(status.get("conditions"), "Unschedulable")
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


def compute_status(
    isvc: InferenceService,
    result: BuildResult,
    observed: Observed,
    previous: Obj | None,
    now: str | None = None,
) -> Obj:
    """The complete new status of a valid service."""
    stamp = now or C.now_rfc3339()
    prev_components = (previous or {}).get("components") or {}
    views = [component_status(r, result, observed, prev_components.get(r.name), stamp) for r in isvc.roles]

    fatal = [n for n in result.notices if n.stops_the_engine]
    valid_message = (
        "spec is valid, but the engine will not start: " + "; ".join(f"{n.reason}: {n.message}" for n in fatal)
        if fatal
        else "spec is valid"
    )
    conds: list[Cond] = [Cond(C.VALID, "True", "ValidWithErrors" if fatal else "Valid", valid_message)]
    missing = [n for n in result.notices if n.condition == C.PREREQUISITES_MET]
    if missing:
        conds.append(Cond(C.PREREQUISITES_MET, "False", missing[0].reason, "; ".join(n.message for n in missing)))
    else:
        conds.append(Cond(C.PREREQUISITES_MET, "True", "AllInstalled", "every API this service needs is installed"))
    others: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for notice in result.notices:
        if notice.condition != C.PREREQUISITES_MET:
            others.setdefault(notice.condition, []).append(notice.message)
            reasons.setdefault(notice.condition, notice.reason)
    for type_, messages in others.items():
        conds.append(Cond(type_, "True", reasons[type_], "; ".join(messages)))

    running = [v for v in views if v.status["phase"] == ComponentPhase.RUNNING.value]
    failed = [v for v in views if v.status["phase"] == ComponentPhase.FAILED.value]
    not_ready = [v for v in views if v.status["phase"] != ComponentPhase.RUNNING.value]
    all_ready = not not_ready and not observed.apply_errors
    if all_ready:
        conds.append(Cond(C.READY, "True", "AllComponentsReady", f"{len(views)}/{len(views)} roles ready"))
    else:
        detail = "; ".join(f"{v.role}: {v.summary}" for v in not_ready) or "; ".join(observed.apply_errors)
        conds.append(Cond(C.READY, "False", "ComponentsNotReady", detail))

    if failed or observed.apply_errors:
        messages = [f"{v.role}: {v.failure}" for v in failed] + observed.apply_errors
        reason = "ComponentFailed" if failed else "ApplyFailed"
        conds.append(Cond(C.DEGRADED, "True", reason, "; ".join(messages)))
        conds.append(Cond(C.PROGRESSING, "False", "Stalled", "; ".join(messages)))
    else:
        conds.append(Cond(C.DEGRADED, "False", "AsExpected", "no component is failing"))
        if not_ready:
            conds.append(
                Cond(C.PROGRESSING, "True", "RollingOut", "; ".join(f"{v.role}: {v.summary}" for v in not_ready))
            )
        else:
            conds.append(Cond(C.PROGRESSING, "False", "Complete", "every role runs the current spec"))

    for extra in (_route_condition(isvc, observed), _gang_condition(isvc, result, observed)):
        if extra is not None:
            conds.append(extra)

    if failed or observed.apply_errors:
        phase = ServicePhase.FAILED if len(failed) == len(views) else ServicePhase.DEGRADED
    elif all_ready:
        phase = ServicePhase.RUNNING
    elif any(v.status["phase"] == ComponentPhase.DEPLOYING.value for v in views) or running:
        phase = ServicePhase.DEPLOYING
    else:
        phase = ServicePhase.PENDING

    merged = C.merge((previous or {}).get("conditions"), conds, isvc.metadata.generation, stamp)
    out: Obj = {
        "observedGeneration": isvc.metadata.generation,
        "phase": phase.value,
        "readyRoles": f"{len(running)}/{len(views)}",
        **explanation(merged),
        **routing_summary(result),
        "conditions": merged,
        "components": {v.role: v.status for v in views},
    }
    return out


SUMMARY_LIMIT = 256


def explanation(conditions: list[Obj]) -> Obj:
    """reason/message of the condition that explains the state (for `kubectl get -o wide`): the
    first False of Valid, PrerequisitesMet, Ready; Ready's when all hold."""
    for type_ in (C.VALID, C.PREREQUISITES_MET, C.READY):
        cond = C.find(conditions, type_)
        if cond is not None and cond.get("status") == "False":
            break
    else:
        cond = C.find(conditions, C.READY)
    if cond is None:
        return {}
    message = str(cond.get("message", ""))
    short = message if len(message) <= SUMMARY_LIMIT else message[: SUMMARY_LIMIT - 3] + "..."
    return {"reason": cond.get("reason"), "message": short}


def routing_summary(result: BuildResult) -> Obj:
    """The model names the service's route matches and the Gateways it attaches to."""
    route = next((o for o in result.objects if o["kind"] == "HTTPRoute"), None)
    if route is None:
        return {}
    from fusioninfer.controller.route_conflicts import model_values

    namespace = route["metadata"].get("namespace", "")
    gateways = [f"{ref.get('namespace') or namespace}/{ref['name']}" for ref in route["spec"].get("parentRefs") or []]
    models = sorted(model_values(route))
    return {
        **({"models": ", ".join(models)} if models else {}),
        **({"route": ", ".join(gateways)} if gateways else {}),
    }


def invalid_status(
    errors: Iterable[FieldError], generation: int | None, previous: Obj | None, now: str | None = None
) -> Obj:
    """Status of a spec that cannot be built: Valid=False with every error and its path."""
    message = "; ".join(str(e) for e in errors)
    conds = [
        Cond(C.VALID, "False", "InvalidSpec", message),
        Cond(C.READY, "False", "InvalidSpec", "the spec is invalid; see the Valid condition"),
    ]
    merged = C.merge((previous or {}).get("conditions"), conds, generation, now)
    out: Obj = {
        "observedGeneration": generation,
        "phase": ServicePhase.INVALID.value,
        **explanation(merged),
        "conditions": merged,
    }
    # Keep the last observed components: the children still exist and still serve.
    if previous and previous.get("components"):
        out["components"] = previous["components"]
        out["readyRoles"] = previous.get("readyRoles")
    return {k: v for k, v in out.items() if v is not None}
