"""Fake Volcano scheduler: gang-binds Pods with `schedulerName: volcano`, and reports on PodGroups.

What it does, as Volcano v1.13's scheduler does (one "session" per pass, at most every second):

- Members of a PodGroup are the Pods in its namespace with `schedulerName: volcano` and the
  annotation `scheduling.k8s.io/group-name: <podgroup>`. A volcano Pod without that annotation is
  a group of one (real Volcano's controller would create a `podgroup-<owner uid>` object for it;
  the fake schedules it alone without creating one).
- Gang validity: fewer than `minMember` valid (not Failed) members, or fewer members of a task
  (`volcano.sh/task-spec`) than its `minTaskMember` -> nothing is bound; condition
  `Unschedulable` with reason `NotEnoughTasks` / `NotEnoughPodsOfTask`.
- Allocation: pending members are placed first-fit on schedulable Nodes (Ready, not cordoned,
  taints tolerated, `nodeSelector` matched) by their requests (limits where requests are absent,
  sidecars and init containers counted as the kube-scheduler does) against the Nodes'
  allocatable minus every Pod already bound there (whoever bound it). The placement is committed
  (`pods/binding`) only if afterwards at least `minMember` members are allocated; otherwise it is
  discarded - all or nothing - and the PodGroup gets `Unschedulable` / `NotEnoughResources` with
  a message saying which resource was short, and each pending member gets
  `PodScheduled=False/Unschedulable`, as Volcano reports.
- Phase (`jobStatus`): `Running` once allocated members (bound, not Failed) reach `minMember`;
  otherwise `Inqueue` once the group's `minResources` fits the idle capacity of the cluster times
  the overcommit factor 1.2 (the `enqueue` action with the `overcommit` plugin's default), else
  `Pending`. Counters `running`, `succeeded`, `failed` from the members' phases.
- PodGroup status is written through the object itself: the CRD has no status subresource.

Not modelled: queues (capacity, weights, reclaim), preemption, priorities, node affinity other
than `nodeSelector`, pod (anti-)affinity, topology. The kube-scheduler binds other Pods to the
same Nodes concurrently, as it does next to a real Volcano; each pass re-reads what is bound.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.core import resource as lk_res
from lightkube.generic_resource import Generic, create_namespaced_resource
from lightkube.resources.core_v1 import Node, Pod, PodBinding, PodStatus
from lightkube.types import PatchType

from fusioninfer.kube.conditions import now_rfc3339
from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.fakes.placement import (
    Resources,
    free_by_node,
    is_bound,
    node_ready,
    place,
    pod_request,
    quantity_nanos,
)
from fusioninfer_dev.localcluster.kube_loop import Loop, annotations_of, list_all, meta

log = logging.getLogger("fusioninfer.fakes.volcano")

SCHEDULER_NAME = "volcano"
GROUP_NAME_ANNOTATION = "scheduling.k8s.io/group-name"
TASK_SPEC_ANNOTATION = "volcano.sh/task-spec"
FIELD_MANAGER = "fusioninfer-fake-volcano"
OVERCOMMIT_FACTOR = 1.2
# Volcano's reasons (apis/pkg/apis/scheduling/v1beta1).
NOT_ENOUGH_TASKS = "NotEnoughTasks"
NOT_ENOUGH_PODS_OF_TASK = "NotEnoughPodsOfTask"
NOT_ENOUGH_RESOURCES = "NotEnoughResources"
SCHEDULED_REASON = "tasks in gang are ready to be scheduled"


class RawPodBinding(lk_res.NamespacedSubResource, Generic):  # type: ignore[misc]
    """`pods/<name>/binding` taking and returning plain dicts (the answer is a Status, which the
    Binding model cannot decode; `raw_resource` would treat a subresource as cluster-scoped)."""

    _api_info = lk_res.api_info(PodBinding)


PodGroup = create_namespaced_resource("scheduling.volcano.sh", "v1beta1", "PodGroup", "podgroups")

# --------------------------------------------------------------------------------------------
# Pure logic (unit-tested); where pods fit is placement.py
# --------------------------------------------------------------------------------------------


def task_of(pod: Mapping[str, Any]) -> str:
    """The `minTaskMember` key a member counts towards (annotation, else label, as Volcano)."""
    m = meta(pod)
    return str(
        (m.get("annotations") or {}).get(TASK_SPEC_ANNOTATION)
        or (m.get("labels") or {}).get(TASK_SPEC_ANNOTATION)
        or ""
    )


def is_member_candidate(pod: Mapping[str, Any]) -> bool:
    """Ours to schedule: `schedulerName: volcano`, not being deleted."""
    return (pod.get("spec") or {}).get("schedulerName") == SCHEDULER_NAME and not meta(pod).get("deletionTimestamp")


@dataclass(frozen=True)
class GangResult:
    """The outcome of one session for one group: what to bind and the PodGroup status to report."""

    binds: dict[str, str]
    phase: str
    condition: Obj | None  # the PodGroup condition to report (type Unschedulable or Scheduled)
    running: int
    succeeded: int
    failed: int
    unschedulable_message: str | None = None  # for the members left pending


def min_resources(podgroup: Mapping[str, Any], members: Sequence[Mapping[str, Any]]) -> Resources:
    declared = (podgroup.get("spec") or {}).get("minResources")
    if isinstance(declared, Mapping):
        return {str(k): quantity_nanos(v) for k, v in declared.items()}
    total: Resources = {}
    for pod in members:
        for name, amount in pod_request(pod).items():
            total[name] = total.get(name, 0) + amount
    return total


def schedule_gang(
    podgroup: Mapping[str, Any],
    members: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    free: dict[str, Resources],
) -> GangResult:
    """One session for one PodGroup. `free` is consumed only if the placement is committed."""
    spec = podgroup.get("spec") or {}
    min_member = int(spec.get("minMember") or 1)
    min_tasks: Mapping[str, Any] = spec.get("minTaskMember") or {}
    previous_phase = (podgroup.get("status") or {}).get("phase")
    phases = [(p.get("status") or {}).get("phase") for p in members]
    running, succeeded, failed = phases.count("Running"), phases.count("Succeeded"), phases.count("Failed")
    valid = [p for p in members if (p.get("status") or {}).get("phase") != "Failed"]
    allocated = [p for p in valid if is_bound(p)]
    pending = sorted((p for p in valid if not is_bound(p)), key=lambda p: (task_of(p), str(meta(p)["name"])))

    def status(phase: str, cond: Obj | None, binds: dict[str, str] | None = None, msg: str | None = None) -> GangResult:
        return GangResult(binds or {}, phase, cond, running, succeeded, failed, msg)

    waiting_phase = "Inqueue" if previous_phase == "Inqueue" else "Pending"
    if len(allocated) >= min_member and not pending:
        return status("Running", _scheduled())
    if len(valid) < min_member:
        msg = f"Not enough valid tasks for gang-scheduling, valid: {len(valid)}, min: {min_member}"
        phase = "Running" if len(allocated) >= min_member else waiting_phase
        return status(phase, _unschedulable(NOT_ENOUGH_TASKS, msg), msg=msg)
    for task, wanted in sorted(min_tasks.items()):
        have = sum(1 for p in valid if task_of(p) == task)
        if have < int(wanted):
            msg = f"Not enough valid pods of each task for gang-scheduling: task {task} has {have}, min: {wanted}"
            return status(waiting_phase, _unschedulable(NOT_ENOUGH_PODS_OF_TASK, msg), msg=msg)

    trial = {name: dict(res) for name, res in free.items()}
    placement = place(pending, nodes, trial)
    if len(allocated) + len(placement.binds) >= min_member:
        free.clear()
        free.update(trial)
        if placement.unplaced:  # the gang is satisfied; the extra pods wait on their own
            msg = placement.fit_error(len(nodes))
            return status("Running", _scheduled(), placement.binds, msg)
        return status("Running", _scheduled(), placement.binds)

    unready = min_member - len(allocated)
    fit = placement.fit_error(len(nodes))
    msg = (
        f"{unready}/{len(members)} tasks in gang unschedulable: pod group is not ready, "
        f"{len(pending)} Pending, {min_member} minAvailable; {fit}"
    )
    idle: Resources = {}
    for node in nodes:
        if not node_ready(node):
            continue
        for res, amount in free.get(str(meta(node)["name"]), {}).items():
            idle[res] = idle.get(res, 0) + max(0, amount)
    need = min_resources(podgroup, members)
    enqueued = waiting_phase == "Inqueue" or all(
        idle.get(res, 0) * OVERCOMMIT_FACTOR >= amount for res, amount in need.items() if res != "pods"
    )
    return status("Inqueue" if enqueued else "Pending", _unschedulable(NOT_ENOUGH_RESOURCES, msg), msg=msg)


def _unschedulable(reason: str, message: str) -> Obj:
    return {"type": "Unschedulable", "status": "True", "reason": reason, "message": message}


def _scheduled() -> Obj:
    # Volcano's message is empty, which Go's `omitempty` leaves out.
    return {"type": "Scheduled", "status": "True", "reason": SCHEDULED_REASON}


def podgroup_status(previous: Mapping[str, Any] | None, result: GangResult, stamp: str) -> Obj:
    """The PodGroup `status` to store; equal to `previous` when nothing changed (no write).

    Like Volcano, a condition gets a new `transitionID` and `lastTransitionTime` whenever what it
    says changes; other condition types are dropped (the fake reports only the latest verdict).
    """
    previous = previous or {}
    conds: list[Obj] = []
    if result.condition is not None:
        cond = dict(result.condition)
        before: Obj = next((c for c in previous.get("conditions") or [] if c.get("type") == cond["type"]), {})
        same = all(before.get(k) == cond.get(k) for k in ("status", "reason", "message"))
        keep = same and before.get("lastTransitionTime") and before.get("transitionID")
        cond["lastTransitionTime"] = before["lastTransitionTime"] if keep else stamp
        cond["transitionID"] = before["transitionID"] if keep else str(uuid.uuid4())
        conds.append(cond)
    return {
        "phase": result.phase,
        "running": result.running,
        "succeeded": result.succeeded,
        "failed": result.failed,
        "conditions": conds,
    }


# --------------------------------------------------------------------------------------------
# The scheduler loop
# --------------------------------------------------------------------------------------------


class FakeVolcano:
    """Gang-schedules `schedulerName: volcano` Pods (in `namespace`, or all) every `period` s and
    whenever Pods, Nodes or PodGroups change."""

    def __init__(self, client: AsyncClient, *, namespace: str | None = None, period: float = 1.0) -> None:
        self.client = client
        self.namespace = namespace
        self.loop = Loop(
            "fake-volcano", client, self.session, [Pod, Node, PodGroup], namespace=namespace, resync=period
        )
        self.stats = {"binds": 0, "podgroup_writes": 0}

    async def run(self) -> None:
        await self.loop.run()

    def stop(self) -> None:
        self.loop.stop()

    async def session(self) -> None:
        """One scheduling session over a fresh snapshot."""
        nodes = await list_all(self.client, Node, None)
        all_pods = await list_all(self.client, Pod, None)
        groups = await list_all(self.client, PodGroup, self.namespace)
        schedulable = [n for n in nodes if node_ready(n)]
        free = free_by_node(schedulable, all_pods)
        ours = [
            p
            for p in all_pods
            if is_member_candidate(p) and (self.namespace is None or meta(p).get("namespace") == self.namespace)
        ]
        by_group: dict[tuple[str, str], list[Obj]] = {}
        singles: list[Obj] = []
        for pod in ours:
            group = annotations_of(pod).get(GROUP_NAME_ANNOTATION)
            if group:
                by_group.setdefault((str(meta(pod)["namespace"]), group), []).append(pod)
            elif not is_bound(pod):
                singles.append(pod)
        stamp = now_rfc3339()
        groups.sort(key=lambda g: (str(meta(g).get("creationTimestamp", "")), str(meta(g)["name"])))
        for pg in groups:
            key = (str(meta(pg)["namespace"]), str(meta(pg)["name"]))
            members = by_group.get(key, [])
            result = schedule_gang(pg, members, schedulable, free)
            await self._bind_all(key[0], result.binds)
            await self._report_pending(members, result)
            status = podgroup_status(pg.get("status"), result, stamp)
            if status != (pg.get("status") or {}):
                await self._write_podgroup_status(key[0], key[1], status)
        for pod in singles:  # a group of one, without a PodGroup object
            placement = place([pod], schedulable, free)
            await self._bind_all(str(meta(pod)["namespace"]), placement.binds)

    async def _bind_all(self, namespace: str, binds: Mapping[str, str]) -> None:
        for pod, node in sorted(binds.items()):
            # A raw (dict) Binding: the apiserver answers with a Status, not a Binding.
            binding = RawPodBinding.from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": pod, "namespace": namespace},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node},
                }
            )
            try:
                await self.client.create(binding, name=pod, namespace=namespace)
                self.stats["binds"] += 1
                log.info("bound %s/%s to %s", namespace, pod, node)
            except ApiError as exc:  # deleted or bound meanwhile: the next session sees it
                if exc.status.code not in (404, 409):
                    raise

    async def _report_pending(self, members: Sequence[Obj], result: GangResult) -> None:
        """`PodScheduled=False/Unschedulable` on members left pending, as Volcano records it."""
        if not result.unschedulable_message:
            return
        for pod in members:
            if is_bound(pod) or meta(pod)["name"] in result.binds:
                continue
            conds = (pod.get("status") or {}).get("conditions") or []
            current: Obj = next((c for c in conds if c.get("type") == "PodScheduled"), {})
            if current.get("status") == "False" and current.get("message") == result.unschedulable_message:
                continue
            cond = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": result.unschedulable_message,
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
            others = [c for c in conds if c.get("type") != "PodScheduled"]
            patch = {"metadata": {"uid": meta(pod)["uid"]}, "status": {"conditions": [*others, cond]}}
            try:
                await self.client.patch(
                    PodStatus, meta(pod)["name"], patch, namespace=meta(pod)["namespace"], patch_type=PatchType.MERGE
                )
            except ApiError as exc:
                if exc.status.code not in (404, 409, 422):
                    raise

    async def _write_podgroup_status(self, namespace: str, name: str, status: Obj) -> None:
        try:
            await self.client.patch(PodGroup, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)
            self.stats["podgroup_writes"] += 1
        except ApiError as exc:
            if exc.status.code != 404:
                raise
