"""Fake Volcano: gang arithmetic (all or nothing), fit against allocatable, phases and status."""

from __future__ import annotations

from typing import Any

from fusioninfer_dev.localcluster.fakes.placement import free_by_node, node_admits, place, pod_request
from fusioninfer_dev.localcluster.fakes.volcano import (
    NOT_ENOUGH_PODS_OF_TASK,
    NOT_ENOUGH_RESOURCES,
    NOT_ENOUGH_TASKS,
    podgroup_status,
    schedule_gang,
)

GPU = "nvidia.com/gpu"
NANO = 10**9


def node(name: str, gpus: int = 8, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"pool": "a"}},
        "spec": spec,
        "status": {
            "allocatable": {GPU: str(gpus), "cpu": "32", "memory": "256Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, gpus: int = 0, *, task: str = "w", node_name: str | None = None, phase: str = "Pending") -> Any:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "annotations": {"scheduling.k8s.io/group-name": "g", "volcano.sh/task-spec": task},
        },
        "spec": {
            "schedulerName": "volcano",
            **({"nodeName": node_name} if node_name else {}),
            "containers": [{"name": "c", "resources": {"limits": {GPU: str(gpus)}, "requests": {"cpu": "500m"}}}],
        },
        "status": {"phase": phase},
    }


def group(min_member: int, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "g", "namespace": "ns"}, "spec": {"minMember": min_member, **spec}}


def test_pod_request_counts_limits_as_requests_and_a_pod_slot() -> None:
    assert pod_request(pod("p", 4)) == {GPU: 4 * NANO, "cpu": NANO // 2, "pods": NANO}


def test_free_counts_every_bound_running_pod_but_not_terminated_ones() -> None:
    nodes = [node("n0")]
    bound = [pod("a", 3, node_name="n0", phase="Running"), pod("b", 5, node_name="n0", phase="Succeeded")]
    assert free_by_node(nodes, bound)["n0"][GPU] == 5 * NANO


def test_too_few_members_bind_nothing() -> None:
    free = free_by_node([node("n0"), node("n1")], [])
    result = schedule_gang(group(3), [pod("a", 1), pod("b", 1)], [node("n0"), node("n1")], free)
    assert result.binds == {}
    assert result.phase == "Pending"
    assert result.condition is not None
    assert result.condition["reason"] == NOT_ENOUGH_TASKS
    assert "valid: 2, min: 3" in result.condition["message"]


def test_min_task_member_is_enforced_per_task() -> None:
    nodes = [node("n0")]
    members = [pod("a", 1, task="prefill"), pod("b", 1, task="decode"), pod("c", 1, task="decode")]
    result = schedule_gang(group(3, minTaskMember={"prefill": 2, "decode": 1}), members, nodes, free_by_node(nodes, []))
    assert result.binds == {}
    assert result.condition is not None
    assert result.condition["reason"] == NOT_ENOUGH_PODS_OF_TASK


def test_gang_that_fits_is_bound_whole_and_consumes_capacity() -> None:
    nodes = [node("n0"), node("n1")]
    free = free_by_node(nodes, [])
    result = schedule_gang(group(3), [pod("a", 8), pod("b", 4), pod("c", 4)], nodes, free)
    assert set(result.binds) == {"a", "b", "c"}
    assert result.phase == "Running"
    assert free["n0"][GPU] == 0
    assert free["n1"][GPU] == 0


def test_gang_that_only_partly_fits_binds_nothing_and_leaves_capacity_alone() -> None:
    nodes = [node("n0"), node("n1")]
    free = free_by_node(nodes, [pod("x", 4, node_name="n1", phase="Running")])
    before = {k: dict(v) for k, v in free.items()}
    result = schedule_gang(group(2), [pod("a", 8), pod("b", 8)], nodes, free)
    assert result.binds == {}
    assert free == before
    assert result.condition is not None
    assert result.condition["reason"] == NOT_ENOUGH_RESOURCES
    # b fits neither n0 (taken by a in the trial) nor n1 (4 GPUs left).
    assert "0/2 nodes are unavailable: 2 Insufficient nvidia.com/gpu" in result.condition["message"]
    assert "2/2 tasks in gang unschedulable" in result.condition["message"]


def test_inqueue_when_min_resources_fit_the_overcommitted_idle_capacity() -> None:
    nodes = [node("n0"), node("n1")]
    # 2 x 9 GPUs: no node holds one, but 18 <= 16 * 1.2 = 19.2 -> enqueued.
    result = schedule_gang(group(2), [pod("a", 9), pod("b", 9)], nodes, free_by_node(nodes, []))
    assert result.phase == "Inqueue"
    result = schedule_gang(group(2), [pod("a", 10), pod("b", 10)], nodes, free_by_node(nodes, []))
    assert result.phase == "Pending"


def test_once_the_gang_runs_extra_members_are_bound_as_they_fit() -> None:
    nodes = [node("n0")]
    running = [pod("a", 4, node_name="n0", phase="Running"), pod("b", 2, node_name="n0", phase="Running")]
    free = free_by_node(nodes, running)
    result = schedule_gang(group(2), [*running, pod("c", 2), pod("d", 2)], nodes, free)
    assert result.phase == "Running"
    assert len(result.binds) == 1


def test_taints_and_node_selector_are_respected() -> None:
    tainted = node("t", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    assert not node_admits(tainted, pod("a"))
    tolerant = pod("a")
    tolerant["spec"]["tolerations"] = [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]
    assert node_admits(tainted, tolerant)
    picky = pod("b")
    picky["spec"]["nodeSelector"] = {"pool": "b"}
    assert not node_admits(node("n"), picky)
    assert place([picky], [node("n")], free_by_node([node("n")], [])).binds == {}


def test_status_is_stable_while_the_verdict_holds() -> None:
    nodes = [node("n0")]
    result = schedule_gang(group(3), [pod("a", 1)], nodes, free_by_node(nodes, []))
    first = podgroup_status(None, result, "2025-01-01T00:00:00Z")
    again = podgroup_status(first, result, "2025-01-01T00:05:00Z")
    assert again == first
    assert first["phase"] == "Pending"
    assert first["conditions"][0]["type"] == "Unschedulable"
