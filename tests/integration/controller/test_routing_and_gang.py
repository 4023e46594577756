"""Router, multi-node and gang-scheduling children against the real control plane.

The LeaderWorkerSet controller is the real one (the session cluster runs it, with its webhooks).
No gateway or Volcano controller runs in the session, so those tests play that controller's part
the way the real one would: they write the HTTPRoute's parent status or the PodGroup's phase,
and check what the InferenceService says.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType
from tests.support.eventually import eventually_async
from tests.support.operator import (
    OperatorFactory,
    RawConfigMap,
    RawDeployment,
    apply_service,
    condition,
    exists,
    get_service,
    monolithic,
    wait_ready,
    with_router,
)

from fusioninfer.runtime.registry import default_registry, raw_resource
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR, install_crds
from fusioninfer_dev.localcluster.fakes import FakeControllers

pytestmark = pytest.mark.integration

HTTPROUTE = default_registry.register("gateway.networking.k8s.io/v1", "HTTPRoute", plural="httproutes", namespaced=True)
LWS = default_registry.register(
    "leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", plural="leaderworkersets", namespaced=True
)
RawPod = raw_resource(Pod)
PODGROUP = default_registry.register("scheduling.volcano.sh/v1beta1", "PodGroup", plural="podgroups", namespaced=True)


async def get(client: AsyncClient, resource: Any, name: str, namespace: str) -> dict[str, Any]:
    return dict(await client.get(resource, name, namespace=namespace))


async def write_status(client: AsyncClient, resource: Any, name: str, namespace: str, status: dict[str, Any]) -> None:
    """Play the third-party controller: merge-patch the status (subresource where the CRD has one;
    Volcano's PodGroup CRD has none, so Volcano writes status through the object itself)."""
    target = resource if resource is PODGROUP else resource.Status
    await client.patch(target, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)


def multinode(name: str = "svc", replicas: int = 2, nodes: int = 4) -> dict[str, Any]:
    out = monolithic(name, replicas=replicas)
    out["spec"]["roles"][0]["multinode"] = {"nodeCount": nodes}
    out["spec"]["roles"][0]["template"]["spec"]["containers"][0]["command"] = ["vllm", "serve", "Qwen/Qwen3-8B"]
    out["spec"]["roles"][0]["template"]["spec"]["containers"][0].pop("args")
    return out


async def test_strategy_switch_replaces_the_config_and_rolls_the_picker(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1), "prefix-cache"), namespace)
    await wait_ready(async_client, "svc", namespace)
    old_config = (await get(async_client, RawConfigMap, "svc-epp-config", namespace))["data"]
    old_template = (await get(async_client, RawDeployment, "svc-epp", namespace))["spec"]["template"]
    assert "prefix-cache-scorer" in "".join(old_config.values())

    await apply_service(async_client, with_router(monolithic(replicas=1), "queue-size"), namespace)

    async def switched() -> None:
        config = "".join((await get(async_client, RawConfigMap, "svc-epp-config", namespace))["data"].values())
        assert "queue-scorer" in config
        assert "prefix-cache-scorer" not in config
        template = (await get(async_client, RawDeployment, "svc-epp", namespace))["spec"]["template"]
        # A changed config must restart the picker: the pod template carries the config's hash.
        assert template["metadata"]["annotations"] != old_template["metadata"]["annotations"]

    await eventually_async(switched)


async def test_route_ready_follows_the_httproute_parent_status(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    route = await eventually_async(lambda: get(async_client, HTTPROUTE, "svc-route", namespace), retry_on=(ApiError,))
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert (backend["group"], backend["kind"], backend["name"]) == (
        "inference.networking.k8s.io",
        "InferencePool",
        "svc-pool",
    )

    async def route_condition(status: str, reason: str | None = None) -> dict[str, Any]:
        obj = await get_service(async_client, "svc", namespace)
        cond = condition(obj, "RouteReady")
        assert cond.get("status") == status, cond
        if reason is not None:
            assert cond.get("reason") == reason, cond
        return cond

    await eventually_async(lambda: route_condition("Unknown", "NoParentStatus"))

    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference-gateway"}

    def parent_status(accepted: str, reason: str) -> dict[str, Any]:
        return {
            "parents": [
                {
                    "parentRef": parent,
                    "controllerName": "example.com/gateway-controller",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": accepted,
                            "reason": reason,
                            "message": f"route is {reason}",
                            "observedGeneration": route["metadata"]["generation"],
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                        }
                    ],
                }
            ]
        }

    await write_status(async_client, HTTPROUTE, "svc-route", namespace, parent_status("True", "Accepted"))
    await eventually_async(lambda: route_condition("True", "Accepted"))

    await write_status(async_client, HTTPROUTE, "svc-route", namespace, parent_status("False", "NotAllowedByListeners"))
    cond = await eventually_async(lambda: route_condition("False", "NotAllowedByListeners"))
    assert "inference-gateway" in cond["message"]

    # `kubectl describe fisvc svc` shows it once: a Warning when the route stops being accepted,
    # not one per reconcile.
    from lightkube.resources.core_v1 import Event

    async def warnings() -> list[Any]:
        fields = {"involvedObject.name": "svc", "reason": "NotAllowedByListeners"}
        return [e async for e in async_client.list(Event, namespace=namespace, fields=fields)]

    async def one_warning() -> None:
        assert len(await warnings()) == 1

    await eventually_async(one_warning, timeout=20, interval=0.5)
    await asyncio.sleep(5)
    (event,) = await warnings()
    assert event.type == "Warning"
    assert (event.count or 1) == 1, "not repeated while nothing changes"


async def test_multinode_role_is_one_lws_and_its_status_drives_the_service(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, fake_controllers: FakeControllers
) -> None:
    """Real LWS controller; the Volcano CRDs are installed, so the role is gang-scheduled (Auto)
    and the stand-in Volcano scheduler binds the groups' pods."""
    await operator_factory(namespace)
    await apply_service(async_client, multinode(replicas=2, nodes=4), namespace)
    lws = await eventually_async(lambda: get(async_client, LWS, "svc-inference", namespace), retry_on=(ApiError,))
    assert lws["spec"]["replicas"] == 2
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 4
    assert not await exists(async_client, RawDeployment, "svc-inference", namespace)

    async def component(phase: str, ready: int) -> dict[str, Any]:
        obj = await get_service(async_client, "svc", namespace)
        comp = obj["status"]["components"]["inference"]
        observed = (comp["phase"], comp["readyReplicas"], comp["nodesPerReplica"], comp.get("readyPods"))
        assert observed == (phase, ready, 4, ready * 4), comp
        return obj

    # The real LWS controller creates the groups' StatefulSets, KWOK runs their pods, and the
    # LWS status it writes is what the service reports. Ready groups come from the LWS status
    # and ready pods from the pods themselves: two watches, so the second may land one
    # reconcile later; both must arrive.
    obj = await eventually_async(lambda: component("Running", 2), timeout=90)
    assert condition(obj, "Ready")["status"] == "True"
    live = await get(async_client, LWS, "svc-inference", namespace)
    assert live["status"]["readyReplicas"] == 2

    # The worker command we render joins the leader through the variable the real LWS pod
    # webhook injects; the webhook set it to the leader of the worker's own group.
    worker = await get(async_client, RawPod, "svc-inference-1-2", namespace)
    (container,) = [c for c in worker["spec"]["containers"] if c["name"] == "vllm"]
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    assert env["LWS_LEADER_ADDRESS"] == f"svc-inference-1.svc-inference.{namespace}"
    assert env["LWS_GROUP_SIZE"] == "4"
    assert env["LWS_WORKER_INDEX"] == "2"
    assert "$(LWS_LEADER_ADDRESS)" in " ".join(container.get("command", []) + container.get("args", []))

    # Scaling changes the one LWS in place.
    await apply_service(async_client, multinode(replicas=3, nodes=4), namespace)

    async def scaled() -> None:
        assert (await get(async_client, LWS, "svc-inference", namespace))["spec"]["replicas"] == 3

    await eventually_async(scaled)
    await eventually_async(lambda: component("Running", 3), timeout=90)

    # Back to a single node: the LWS is pruned and a Deployment takes its place.
    await apply_service(async_client, monolithic(replicas=1), namespace)

    async def switched() -> None:
        assert not await exists(async_client, LWS, "svc-inference", namespace)
        assert await exists(async_client, RawDeployment, "svc-inference", namespace)

    await eventually_async(switched)


async def test_gang_podgroup_follows_scale_reports_unschedulable_and_is_pruned(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    spec = multinode(replicas=2, nodes=2)
    spec["spec"]["schedulingStrategy"] = {"schedulerName": "volcano", "queue": "research"}
    await apply_service(async_client, spec, namespace)
    group = await eventually_async(lambda: get(async_client, PODGROUP, "svc", namespace), retry_on=(ApiError,))
    assert group["spec"]["minMember"] == 4
    assert group["spec"]["queue"] == "research"
    assert group["spec"]["minResources"]["nvidia.com/gpu"] == "4"
    lws = await get(async_client, LWS, "svc-inference", namespace)
    leader_pod = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert leader_pod["spec"]["schedulerName"] == "volcano"
    assert leader_pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"] == "svc"

    async def gang(status: str, reason: str) -> dict[str, Any]:
        cond = condition(await get_service(async_client, "svc", namespace), "GangScheduled")
        assert (cond.get("status"), cond.get("reason")) == (status, reason), cond
        return cond

    await eventually_async(lambda: gang("Unknown", "NoStatus"))
    await write_status(
        async_client,
        PODGROUP,
        "svc",
        namespace,
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "Unschedulable",
                    "status": "True",
                    "reason": "NotEnoughResources",
                    "message": "4/4 tasks in gang unschedulable: 4 Insufficient nvidia.com/gpu",
                    "transitionID": "1",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    )
    cond = await eventually_async(lambda: gang("False", "Unschedulable"))
    assert "Insufficient nvidia.com/gpu" in cond["message"]

    await write_status(async_client, PODGROUP, "svc", namespace, {"phase": "Running", "conditions": None})
    await eventually_async(lambda: gang("True", "Running"))

    scaled = copy.deepcopy(spec)
    scaled["spec"]["roles"][0]["replicas"] = 3
    await apply_service(async_client, scaled, namespace)

    async def grown() -> None:
        assert (await get(async_client, PODGROUP, "svc", namespace))["spec"]["minMember"] == 6

    await eventually_async(grown)

    # A single-node monolithic service with no scheduler request needs no gang: the PodGroup goes.
    await apply_service(async_client, monolithic(replicas=1), namespace)

    async def pruned() -> None:
        assert not await exists(async_client, PODGROUP, "svc", namespace)

    await eventually_async(pruned)
    obj = await wait_ready(async_client, "svc", namespace)
    assert condition(obj, "GangScheduled") == {}


async def delete_crd(client: AsyncClient, name: str) -> None:
    await client.delete(CustomResourceDefinition, name)

    async def gone() -> None:
        try:
            await client.get(CustomResourceDefinition, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return
            raise
        raise AssertionError(f"CRD {name} still exists")

    await eventually_async(gone, timeout=60)


async def test_a_missing_prerequisite_is_named_and_converges_once_installed(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster
) -> None:
    crd_name = "httproutes.gateway.networking.k8s.io"
    crd_file = BUNDLED_CRD_DIR / "gateway-api-v1.4.1" / "gateway.networking.k8s.io_httproutes.yaml"
    await delete_crd(async_client, crd_name)
    try:
        await operator_factory(namespace)
        await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)

        async def reported() -> dict[str, Any]:
            obj = await get_service(async_client, "svc", namespace)
            cond = condition(obj, "PrerequisitesMet")
            assert cond.get("status") == "False", cond
            assert "HTTPRoute" in cond["message"] or "Gateway API" in cond["message"], cond
            return obj

        await eventually_async(reported)
        # Everything that does not need the missing API is deployed anyway.
        await eventually_async(lambda: wait_ready(async_client, "svc", namespace, timeout=5), timeout=60)
        assert await exists(async_client, RawDeployment, "svc-epp", namespace)
    finally:
        await asyncio.to_thread(install_crds, cluster.client(), crd_file)

    async def converged() -> None:
        obj = await get_service(async_client, "svc", namespace)
        assert condition(obj, "PrerequisitesMet").get("status") == "True"
        assert await exists(async_client, HTTPROUTE, "svc-route", namespace)

    await eventually_async(converged, timeout=60)


async def test_multinode_rolling_update_through_the_real_lws_follows_the_spec(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    """An image change of a multi-node role with `partition: 1`: the real LWS controller replaces
    only group 1 (group 0 keeps the old template, as the spec says), the service reports the
    rollout while it is under way, and lowering the partition to 0 finishes it."""
    await operator_factory(namespace)
    spec = multinode(replicas=2, nodes=2)
    spec["spec"]["schedulingStrategy"] = {"gangScheduling": "Disabled"}  # no Volcano in the session
    spec["spec"]["roles"][0]["rollout"] = {"maxUnavailable": 1, "partition": 1}
    await apply_service(async_client, spec, namespace)
    await wait_ready(async_client, "svc", namespace, timeout=90)

    def images() -> Any:
        async def read() -> dict[str, str]:
            pods = [dict(p) async for p in async_client.list(RawPod, namespace=namespace)]
            return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods}

        return read()

    new_image = "vllm/vllm-openai:v0.11.1"
    edited = copy.deepcopy(spec)
    edited["spec"]["roles"][0]["template"]["spec"]["containers"][0]["image"] = new_image

    async def partly_rolled() -> dict[str, Any]:
        live = await images()
        assert live == {
            "svc-inference-0": "vllm/vllm-openai:v0.11.0",
            "svc-inference-0-1": "vllm/vllm-openai:v0.11.0",
            "svc-inference-1": new_image,
            "svc-inference-1-1": new_image,
        }, live
        obj = await get_service(async_client, "svc", namespace)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        # Settled: both groups serve; group 0 stays on the old template by request, so the role
        # does not run the current spec, and the status says exactly that.
        ready = condition(obj, "Ready")
        assert (ready["status"], ready["message"]) == (
            "False",
            "inference: 2/2 replicas ready, 1/2 updated (rolling out)",
        ), ready
        return obj

    await apply_service(async_client, edited, namespace)
    await eventually_async(partly_rolled, timeout=90)

    finished = copy.deepcopy(edited)
    finished["spec"]["roles"][0]["rollout"] = {"maxUnavailable": 1, "partition": 0}
    await apply_service(async_client, finished, namespace)

    async def all_rolled() -> None:
        live = await images()
        assert set(live.values()) == {new_image}, live

    await eventually_async(all_rolled, timeout=90)
    await wait_ready(async_client, "svc", namespace, timeout=90)
