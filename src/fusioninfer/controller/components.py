"""One role's status, computed from its desired workload and what the caches hold (pure).

A role's phase says whether waiting will help: Pending (nothing to count yet), Deploying (pods
on their way, or a rollout in progress), Running (every replica ready on the newest spec) or
Failed (a pod or the workload reports a state that will not get better by waiting). The counts
are what `kubectl get` and the status tree show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fusioninfer.api.labels import LABEL_ROLE_NAME
from fusioninfer.api.status_spec import ComponentPhase
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import BuildResult
from fusioninfer.kube.conditions import status_condition
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
    progress = status_condition(live, "Progressing")
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
