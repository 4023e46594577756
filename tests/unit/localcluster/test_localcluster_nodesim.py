"""Unit tests of the node simulator's pure parts: what a simulated kubelet reports for a Pod in
each mode, how modes are chosen, and what the simulated Nodes look like."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import pytest

from fusioninfer.localcluster.nodesim import (
    GPU_RESOURCE,
    SIMULATE_ANNOTATION,
    SIMULATE_DELAY_ANNOTATION,
    NodeSpec,
    PodMode,
    SimulationRule,
    compute_pod_status,
    node_host_ip,
    node_manifest,
    node_status,
    parse_rule,
    pod_delay,
    pod_ip,
    pod_mode,
    status_signature,
)

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def make_pod(
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    restart_policy: str | None = None,
    init: bool = False,
    gates: list[str] | None = None,
    status: dict[str, Any] | None = None,
    containers: tuple[str, ...] = ("engine",),
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": "sim-node-0",
        "containers": [{"name": c, "image": f"example.com/{c}:v1"} for c in containers],
    }
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if init:
        spec["initContainers"] = [{"name": "fetch-model", "image": "busybox:1"}]
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "uid-1",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec,
        "status": status or {"phase": "Pending", "qosClass": "BestEffort"},
    }


def conds(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def compute(pod: dict[str, Any], mode: PodMode = PodMode.RUN, now: dt.datetime = T0) -> dict[str, Any]:
    return compute_pod_status(pod, mode=mode, host_ip="10.240.0.1", ip="10.244.0.2", now=now)


def test_run_mode_reports_a_running_ready_pod_like_a_kubelet() -> None:
    status = compute(make_pod(init=True, containers=("engine", "sidecar")))
    assert status["phase"] == "Running"
    assert conds(status) == {"Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    assert status["podIP"] == "10.244.0.2"
    assert status["podIPs"] == [{"ip": "10.244.0.2"}]
    assert status["hostIP"] == "10.240.0.1"
    assert status["startTime"] == "2026-01-02T03:04:05Z"
    assert status["qosClass"] == "BestEffort", "apiserver-computed fields are kept"
    assert [c["name"] for c in status["containerStatuses"]] == ["engine", "sidecar"]
    for cs in status["containerStatuses"]:
        assert cs["ready"] is True
        assert cs["started"] is True
        assert cs["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
        assert cs["containerID"].startswith("containerd://")
        assert cs["restartCount"] == 0
    (init,) = status["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    assert init["state"]["terminated"]["reason"] == "Completed"


def test_recomputing_a_settled_pod_changes_nothing() -> None:
    """Idempotence: the simulator must not rewrite a Pod it already settled (no write loops),
    and timestamps of unchanged states are kept."""
    pod = make_pod(init=True)
    first = compute(pod, now=T0)
    pod["status"] = first
    second = compute(pod, now=T1)
    assert status_signature(second) == status_signature(first)
    assert second == first


def test_transition_timestamps_move_only_when_a_condition_changes() -> None:
    pod = make_pod()
    pod["status"] = compute(pod, PodMode.RUN, now=T0)
    failed = compute(pod, PodMode.FAIL, now=T1)
    by_type = {c["type"]: c for c in failed["conditions"]}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert by_type["PodScheduled"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert status_signature(failed) != status_signature(pod["status"])


def test_fail_mode_crash_loops_when_the_pod_would_be_restarted() -> None:
    status = compute(make_pod(), PodMode.FAIL)
    assert status["phase"] == "Running"
    assert conds(status)["Ready"] == "False"
    assert conds(status)["ContainersReady"] == "False"
    (cs,) = status["containerStatuses"]
    assert cs["ready"] is False
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] > 0
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [engine]"


def test_fail_mode_fails_the_pod_when_restart_policy_is_never() -> None:
    status = compute(make_pod(restart_policy="Never"), PodMode.FAIL)
    assert status["phase"] == "Failed"
    assert status["reason"] == "Error"
    (cs,) = status["containerStatuses"]
    assert cs["state"]["terminated"]["exitCode"] == 1
    assert conds(status)["Ready"] == "False"


def test_unready_mode_runs_containers_that_never_pass_readiness() -> None:
    status = compute(make_pod(), PodMode.UNREADY)
    assert status["phase"] == "Running"
    (cs,) = status["containerStatuses"]
    assert cs["started"] is True
    assert cs["ready"] is False
    assert "running" in cs["state"]
    assert conds(status)["Ready"] == "False"


def test_pending_mode_has_no_ip_and_containers_creating() -> None:
    status = compute(make_pod(init=True), PodMode.PENDING)
    assert status["phase"] == "Pending"
    assert "podIP" not in status
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert status["initContainerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert conds(status) == {
        "Initialized": "False",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    }


def test_succeed_mode_completes_the_pod() -> None:
    status = compute(make_pod(restart_policy="Never"), PodMode.SUCCEED)
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "PodCompleted"


def test_readiness_gates_hold_ready_until_their_conditions_are_true() -> None:
    gate = "fusioninfer.io/registered"
    pod = make_pod(gates=[gate])
    status = compute(pod)
    assert conds(status)["ContainersReady"] == "True"
    assert conds(status)["Ready"] == "False"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "ReadinessGatesNotReady"

    pod["status"] = {**status, "conditions": [*status["conditions"], {"type": gate, "status": "True"}]}
    status = compute(pod)
    assert conds(status)["Ready"] == "True"
    assert conds(status)[gate] == "True", "conditions owned by others are preserved"


def test_mode_selection_annotation_beats_rules_beats_default() -> None:
    rules = [SimulationRule({"app": "x", "tier": "gpu"}, PodMode.FAIL), SimulationRule({"app": "x"}, PodMode.UNREADY)]
    assert pod_mode(make_pod(labels={"app": "y"}), rules) is PodMode.RUN
    assert pod_mode(make_pod(labels={"app": "x"}), rules) is PodMode.UNREADY
    assert pod_mode(make_pod(labels={"app": "x", "tier": "gpu"}), rules) is PodMode.FAIL
    annotated = make_pod(labels={"app": "x", "tier": "gpu"}, annotations={SIMULATE_ANNOTATION: " Succeed "})
    assert pod_mode(annotated, rules) is PodMode.SUCCEED
    assert pod_mode(make_pod(annotations={SIMULATE_ANNOTATION: "explode"})) is PodMode.RUN


@pytest.mark.parametrize(("value", "expected"), [(None, 1.5), ("3", 3.0), ("0.25", 0.25), ("-2", 0.0), ("soon", 1.5)])
def test_pod_delay(value: str | None, expected: float) -> None:
    annotations = {SIMULATE_DELAY_ANNOTATION: value} if value is not None else {}
    assert pod_delay(make_pod(annotations=annotations), default=1.5) == expected


def test_parse_rule() -> None:
    assert parse_rule("app=web,tier=gpu:fail") == SimulationRule({"app": "web", "tier": "gpu"}, PodMode.FAIL)
    assert parse_rule("fusioninfer.io/role=decode:unready").mode is PodMode.UNREADY
    for bad in ("fail", "app:fail", "app=web:explode"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rule(bad)


def test_pod_ips_are_per_node_and_bounded() -> None:
    assert pod_ip(0, 0) == "10.244.0.2"
    assert pod_ip(3, 252) == "10.244.3.254"
    with pytest.raises(ValueError, match="253"):
        pod_ip(0, 253)
    assert node_host_ip(0) == "10.240.0.1"
    assert len({node_host_ip(i) for i in range(600)}) == 600


def test_node_has_gpu_capacity_labels_and_a_healthy_status() -> None:
    spec = NodeSpec(cpu="16", memory="64Gi", pods=50, gpus=4, labels={"zone": "a"})
    manifest = node_manifest("sim-node-2", 2, spec, "sim-node")
    labels = manifest["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-node-2"
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["zone"] == "a"
    assert manifest["spec"] == {}, "no taints: pods must be schedulable"

    status = node_status(2, spec, T1, started=T0)
    assert status["capacity"] == status["allocatable"]
    assert status["allocatable"] == {
        "cpu": "16",
        "memory": "64Gi",
        "pods": "50",
        "ephemeral-storage": "1Ti",
        GPU_RESOURCE: "4",
    }
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["Ready"]["lastHeartbeatTime"] == "2026-01-02T03:09:05Z"
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert {by_type[t]["status"] for t in ("MemoryPressure", "DiskPressure", "PIDPressure")} == {"False"}
    assert {"type": "InternalIP", "address": node_host_ip(2)} in status["addresses"]
    assert status["nodeInfo"]["kubeletVersion"] == "v1.20.2"


def test_cpu_only_nodes_have_no_gpu_labels() -> None:
    labels = node_manifest("n", 0, NodeSpec(gpus=0), "p")["metadata"]["labels"]
    assert not any(k.startswith("nvidia.com/") for k in labels)
