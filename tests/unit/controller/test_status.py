"""Status computation: what a user reads in `kubectl get fisvc` and `describe`."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper, serving_role

from fusioninfer.api.errors import FieldError
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, build
from fusioninfer.builders.context import Capabilities
from fusioninfer.controller import conditions as C
from fusioninfer.controller.components import pod_failure, pod_is_ready
from fusioninfer.controller.status import Observed, compute_status, invalid_status

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def stored() -> InferenceServiceWrapper:
    """`svc` in `ns` as the apiserver stores it: the uid its children are owned by, generation 1."""
    return InferenceServiceWrapper().namespace("ns").metadata(uid="u1", generation=1)


# Two replicas of an engine container without args: the status is about counts, not flags.
WORKER = serving_role("inference", "worker", replicas=2, args=None)


def deployment_status(name: str, ready: int, replicas: int, updated: int | None = None, gen: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns", "generation": gen},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": gen,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas if updated is None else updated,
        },
    }


def pod(role: str, ready: bool, name: str = "p", waiting: str | None = None, phase: str = "Running") -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if waiting:
        status["containerStatuses"] = [{"name": "vllm", "state": {"waiting": {"reason": waiting, "message": "boom"}}}]
    return {
        "metadata": {"name": name, "labels": {"fusioninfer.io/service": "svc", "fusioninfer.io/role-name": role}},
        "status": status,
    }


def compute(
    service: InferenceServiceWrapper, observed: Observed, previous: dict[str, Any] | None = None, now: str = T0
):
    isvc = parse(service.obj())
    result = build(isvc, BuildOptions(owner_uid="u1"))
    return compute_status(isvc, result, observed, previous, now=now)


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = C.find(status["conditions"], type_)
    assert found is not None, f"no {type_} condition in {status['conditions']}"
    return found


def test_nothing_created_yet_is_pending_and_not_ready() -> None:
    status = compute(stored().role(WORKER), Observed())
    comp = status["components"]["inference"]
    assert comp == {
        "desiredReplicas": 2,
        "readyReplicas": 0,
        "nodesPerReplica": 1,
        "totalPods": 2,
        "readyPods": 0,
        "phase": "Pending",
        "lastUpdateTime": T0,
    }
    assert status["phase"] == "Pending"
    assert status["readyRoles"] == "0/1"
    assert cond(status, "Ready")["status"] == "False"
    assert cond(status, "Progressing")["status"] == "True"
    assert cond(status, "Degraded")["status"] == "False"
    assert cond(status, "Valid")["status"] == "True"
    assert status["observedGeneration"] == 1


def test_all_replicas_ready_is_running_and_ready() -> None:
    observed = Observed(
        children={("Deployment", "svc-inference"): deployment_status("svc-inference", 2, 2)},
        pods=[pod("inference", True, "a"), pod("inference", True, "b")],
    )
    status = compute(stored().role(WORKER), observed)
    assert status["components"]["inference"]["phase"] == "Running"
    assert status["components"]["inference"]["readyPods"] == 2
    assert status["phase"] == "Running"
    assert status["readyRoles"] == "1/1"
    assert cond(status, "Ready")["status"] == "True"
    assert cond(status, "Progressing") | {"lastTransitionTime": None} == {
        "type": "Progressing",
        "status": "False",
        "reason": "Complete",
        "message": "every role runs the current spec",
        "observedGeneration": 1,
        "lastTransitionTime": None,
    }


def test_rollout_in_progress_is_deploying_even_when_ready_count_matches() -> None:
    # Every replica ready, but only one runs the new template yet.
    observed = Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 2, 2, updated=1)})
    status = compute(stored().role(WORKER), observed)
    assert status["components"]["inference"]["phase"] == "Deploying"
    ready = cond(status, "Ready")
    assert ready["status"] == "False"
    # The message explains the False: not a bare "2/2 replicas ready".
    assert ready["message"] == "inference: 2/2 replicas ready, 1/2 updated (rolling out)"
    assert cond(status, "Progressing")["message"] == ready["message"]


def test_stale_observed_generation_is_not_running() -> None:
    live = deployment_status("svc-inference", 2, 2)
    live["metadata"]["generation"] = 3
    status = compute(stored().role(WORKER), Observed(children={("Deployment", "svc-inference"): live}))
    assert status["components"]["inference"]["phase"] == "Deploying"


@pytest.mark.parametrize("reason", ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"])
def test_crashing_pod_fails_the_component_and_degrades_the_service(reason: str) -> None:
    observed = Observed(
        children={("Deployment", "svc-inference"): deployment_status("svc-inference", 1, 2)},
        pods=[pod("inference", True, "a"), pod("inference", False, "b", waiting=reason)],
    )
    status = compute(stored().role(WORKER), observed)
    assert status["components"]["inference"]["phase"] == "Failed"
    degraded = cond(status, "Degraded")
    assert degraded["status"] == "True"
    assert degraded["reason"] == "ComponentFailed"
    assert f"pod b container vllm: {reason}: boom" in degraded["message"]
    assert status["phase"] == "Failed"
    assert cond(status, "Progressing")["reason"] == "Stalled"


def test_apply_errors_degrade_and_block_ready() -> None:
    observed = Observed(
        children={("Deployment", "svc-inference"): deployment_status("svc-inference", 2, 2)},
        apply_errors=["applying ConfigMap x: forbidden"],
    )
    status = compute(stored().role(WORKER), observed)
    assert cond(status, "Ready")["status"] == "False"
    assert cond(status, "Degraded")["reason"] == "ApplyFailed"
    assert "forbidden" in cond(status, "Degraded")["message"]


def test_recovery_clears_degraded_nothing_sticks() -> None:
    bad = compute(
        stored().role(WORKER),
        Observed(
            children={("Deployment", "svc-inference"): deployment_status("svc-inference", 1, 2)},
            pods=[pod("inference", False, "b", waiting="CrashLoopBackOff")],
        ),
        now=T0,
    )
    good = compute(
        stored().role(WORKER),
        Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 2, 2)}),
        previous=bad,
        now=T1,
    )
    assert cond(good, "Degraded")["status"] == "False"
    assert cond(good, "Degraded")["lastTransitionTime"] == T1
    assert cond(good, "Ready")["status"] == "True"
    assert good["phase"] == "Running"


def test_unchanged_inputs_give_identical_status_so_no_write() -> None:
    observed = Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 2, 2)})
    first = compute(stored().role(WORKER), observed, now=T0)
    second = compute(stored().role(WORKER), observed, previous=copy.deepcopy(first), now=T1)
    assert second == first


def test_transition_time_moves_only_when_status_flips() -> None:
    observed = Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 1, 2)})
    first = compute(stored().role(WORKER), observed, now=T0)
    # Still not ready, different message (1/2 -> 0/2): time stays.
    observed2 = Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 0, 2)})
    second = compute(stored().role(WORKER), observed2, previous=first, now=T1)
    assert cond(second, "Ready")["lastTransitionTime"] == T0
    assert cond(second, "Ready")["message"] != cond(first, "Ready")["message"]
    # lastUpdateTime of the component moves because its counts changed.
    assert second["components"]["inference"]["lastUpdateTime"] == T1


def test_scaled_to_zero_is_running() -> None:
    observed = Observed(children={("Deployment", "svc-inference"): deployment_status("svc-inference", 0, 0)})
    status = compute(stored().worker(replicas=0, args=None), observed)
    assert status["components"]["inference"]["phase"] == "Running"
    assert status["components"]["inference"]["totalPods"] == 0


def test_multinode_counts_pods_per_group() -> None:
    raw = stored().worker(replicas=2, args=None, multinode={"nodeCount": 4})
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "svc-inference", "generation": 1},
        "status": {"readyReplicas": 1, "replicas": 2, "updatedReplicas": 2},
    }
    pods = [pod("inference", i < 6, f"p{i}") for i in range(8)]
    status = compute(raw, Observed(children={("LeaderWorkerSet", "svc-inference"): lws}, pods=pods))
    comp = status["components"]["inference"]
    assert comp["nodesPerReplica"] == 4
    assert comp["totalPods"] == 8
    assert comp["readyReplicas"] == 1
    assert comp["readyPods"] == 6
    assert comp["phase"] == "Deploying"


def test_missing_prerequisites_are_reported() -> None:
    isvc = parse(stored().worker(replicas=1, args=None, multinode={"nodeCount": 2}).obj())
    result = build(isvc, BuildOptions(owner_uid="u1", capabilities=Capabilities(lws=False)))
    status = compute_status(isvc, result, Observed(), None, now=T0)
    prereq = cond(status, "PrerequisitesMet")
    assert prereq["status"] == "False"
    assert "LeaderWorkerSet" in prereq["message"] or "lws" in prereq["message"].lower()
    assert status["components"]["inference"]["phase"] == "Pending"


def test_route_ready_reflects_the_gateway_verdict() -> None:
    raw = stored().router(parent="gw").worker(replicas=1, args=None)
    route = {"kind": "HTTPRoute", "metadata": {"name": "svc-route"}, "status": {}}
    unknown = compute(raw, Observed(children={("HTTPRoute", "svc-route"): route}))
    assert cond(unknown, "RouteReady")["status"] == "Unknown"
    route["status"] = {
        "parents": [
            {
                "parentRef": {"name": "gw", "kind": "Gateway"},
                "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners"}],
            }
        ]
    }
    refused = compute(raw, Observed(children={("HTTPRoute", "svc-route"): route}))
    assert cond(refused, "RouteReady")["status"] == "False"
    assert cond(refused, "RouteReady")["reason"] == "NotAllowedByListeners"
    route["status"]["parents"][0]["conditions"] = [
        {"type": "Accepted", "status": "True", "reason": "Accepted"},
        {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs"},
    ]
    accepted = compute(raw, Observed(children={("HTTPRoute", "svc-route"): route}))
    assert cond(accepted, "RouteReady")["status"] == "True"


def _gang_status(pg_status: dict[str, Any]) -> dict[str, Any]:
    raw = stored().worker(replicas=1, args=None).spec(schedulingStrategy={"schedulerName": "volcano"})
    podgroup = {"kind": "PodGroup", "metadata": {"name": "svc"}, "status": pg_status}
    return cond(compute(raw, Observed(children={("PodGroup", "svc"): podgroup})), "GangScheduled")


UNSCHEDULABLE = {
    "type": "Unschedulable",
    "status": "True",
    "reason": "NotEnoughResources",
    "message": "1/1 tasks in gang unschedulable: 0/10 nodes are unavailable: 10 Insufficient nvidia.com/gpu.",
}


def test_gang_is_scheduled_only_when_placed() -> None:
    assert (_gang_status({"phase": "Running"})["status"], _gang_status({"phase": "Running"})["reason"]) == (
        "True",
        "Running",
    )
    inqueue = _gang_status({"phase": "Inqueue"})
    assert (inqueue["status"], inqueue["reason"]) == ("False", "Inqueue")


def test_gang_unschedulable_says_the_schedulers_words_even_when_inqueue() -> None:
    """Volcano moves an admitted group to Inqueue and then finds no room: that is not scheduled."""
    for phase in ("Inqueue", "Pending"):
        gang = _gang_status({"phase": phase, "conditions": [UNSCHEDULABLE]})
        assert (gang["status"], gang["reason"]) == ("False", "Unschedulable")
        assert "10 Insufficient nvidia.com/gpu" in gang["message"]


def test_invalid_spec_status_names_every_error_and_keeps_components() -> None:
    previous = {"components": {"inference": {"phase": "Running"}}, "readyRoles": "1/1", "conditions": []}
    errors = [FieldError("spec.roles[0].replicas", "Invalid value: -1: must be >= 0")]
    status = invalid_status(errors, 4, previous, now=T0)
    valid = cond(status, "Valid")
    assert valid["status"] == "False"
    assert valid["reason"] == "InvalidSpec"
    assert valid["message"] == "spec.roles[0].replicas: Invalid value: -1: must be >= 0"
    assert status["phase"] == "Invalid"
    assert status["observedGeneration"] == 4
    assert status["components"] == previous["components"]


def test_pod_helpers() -> None:
    assert pod_is_ready(pod("r", True))
    assert not pod_is_ready(pod("r", False))
    terminating = pod("r", True)
    terminating["metadata"]["deletionTimestamp"] = T0
    assert not pod_is_ready(terminating)
    assert pod_failure(pod("r", False, phase="Failed")) is not None
    assert pod_failure(pod("r", False, waiting="ContainerCreating")) is None


def test_a_removed_connector_is_named_in_the_valid_condition() -> None:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.11.0",
        "args": ["--model", "m", "--kv-transfer-config", '{"kv_connector":"PyNcclConnector","kv_role":"kv_both"}'],
    }
    valid = cond(compute(stored().prefiller(container=container).decoder(container=container), Observed()), "Valid")
    assert (valid["status"], valid["reason"]) == ("True", "ValidWithErrors")
    assert valid["message"].startswith("spec is valid, but the engine will not start: DeprecatedKVConnector: ")
    assert cond(compute(stored().role(WORKER), Observed()), "Valid")["reason"] == "Valid"
