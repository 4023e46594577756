"""The operator against a real kube-apiserver, controller-manager, scheduler and simulated nodes.

Each test starts its own operator watching its own namespace, applies InferenceServices the way
a user would, and checks what a user would check: the children, their owner references, the
status and conditions, and that the operator stays quiet when nothing changes.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Namespace
from tests.support.eventually import eventually_async
from tests.support.operator import (
    ISVC,
    OperatorFactory,
    RawConfigMap,
    RawDeployment,
    apply_service,
    condition,
    deployment,
    exists,
    get_service,
    monolithic,
    wait_ready,
    with_router,
)

from fusioninfer.runtime.apply import apply
from fusioninfer.runtime.metrics import default_metrics
from fusioninfer.runtime.registry import raw_resource
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

RawEvent = raw_resource(Event)


async def test_create_makes_owned_deployment_pods_ready_and_status_ready(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    created = await apply_service(async_client, monolithic(replicas=2), namespace)
    uid = created["metadata"]["uid"]

    dep = await eventually_async(lambda: deployment(async_client, "svc-inference", namespace), retry_on=(ApiError,))
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    owners = dep["metadata"]["ownerReferences"]
    assert owners == [
        {
            "apiVersion": "fusioninfer.io/v1alpha1",
            "kind": "InferenceService",
            "name": "svc",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    pod_meta = dep["spec"]["template"]["metadata"]
    assert pod_meta["labels"]["team"] == "ml"  # the user's template labels are kept
    assert pod_meta["annotations"]["owner"] == "alice"
    assert pod_meta["labels"]["fusioninfer.io/role-name"] == "inference"

    obj = await wait_ready(async_client, "svc", namespace)
    status = obj["status"]
    assert status["components"]["inference"] | {"lastUpdateTime": None} == {
        "desiredReplicas": 2,
        "readyReplicas": 2,
        "nodesPerReplica": 1,
        "totalPods": 2,
        "readyPods": 2,
        "phase": "Running",
        "lastUpdateTime": None,
    }
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["phase"] == "Running"
    assert status["readyRoles"] == "1/1"
    assert condition(obj, "Valid")["status"] == "True"
    assert condition(obj, "Degraded")["status"] == "False"
    assert condition(obj, "Progressing")["status"] == "False"


async def test_idle_operator_sends_zero_writes(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    running = await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    await wait_ready(async_client, "svc", namespace)
    await asyncio.sleep(2)  # let the last watch events drain
    before = running.writes()
    # Wake every reconcile path without changing anything: re-enqueue the service many times.
    for _ in range(5):
        running.operator.enqueue_all()
        await asyncio.sleep(0.3)
    await asyncio.sleep(2)
    assert running.writes() == before, running.counter.recent_writes[-10:]


async def test_scale_and_image_change_update_the_deployment(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, monolithic(replicas=1), namespace)
    await wait_ready(async_client, "svc", namespace)

    await apply_service(async_client, monolithic(replicas=3, image="vllm/vllm-openai:v0.11.1"), namespace)

    async def updated() -> None:
        dep = await deployment(async_client, "svc-inference", namespace)
        assert dep["spec"]["replicas"] == 3
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.11.1"

    await eventually_async(updated)
    obj = await wait_ready(async_client, "svc", namespace)
    comp = obj["status"]["components"]["inference"]
    assert (comp["desiredReplicas"], comp["readyReplicas"], comp["readyPods"]) == (3, 3, 3)


async def test_removing_the_router_prunes_all_its_objects(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    await wait_ready(async_client, "svc", namespace)
    assert await exists(async_client, RawDeployment, "svc-epp", namespace)
    assert await exists(async_client, RawConfigMap, "svc-epp-config", namespace)

    await apply_service(async_client, monolithic(replicas=1), namespace)

    async def pruned() -> None:
        assert not await exists(async_client, RawDeployment, "svc-epp", namespace)
        assert not await exists(async_client, RawConfigMap, "svc-epp-config", namespace)

    await eventually_async(pruned)
    assert await exists(async_client, RawDeployment, "svc-inference", namespace)

    async def reported() -> None:
        obj = await wait_ready(async_client, "svc", namespace)
        assert set(obj["status"]["components"]) == {"inference"}, "a removed role leaves the status"
        assert obj["status"]["readyRoles"] == "1/1"

    await eventually_async(reported)


async def test_never_touches_objects_it_does_not_own(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "svc-epp-config",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "fusioninfer"},
        },
        "data": {"mine": "yes"},
    }
    await apply(async_client, foreign, "someone-else")
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)

    async def reported() -> None:
        obj = await get_service(async_client, "svc", namespace)
        degraded = condition(obj, "Degraded")
        assert degraded.get("status") == "True"
        assert "ConfigMap svc-epp-config already exists and is not owned" in degraded["message"]

    await eventually_async(reported)
    cm = dict(await async_client.get(RawConfigMap, "svc-epp-config", namespace=namespace))
    assert cm["data"] == {"mine": "yes"}
    assert not cm["metadata"].get("ownerReferences")


async def test_drift_is_repaired(operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, monolithic(replicas=2), namespace)
    await wait_ready(async_client, "svc", namespace)

    # Someone scales the Deployment by hand: the spec wins again.
    await async_client.patch(RawDeployment, "svc-inference", {"spec": {"replicas": 5}}, namespace=namespace)

    async def restored() -> None:
        assert (await deployment(async_client, "svc-inference", namespace))["spec"]["replicas"] == 2

    await eventually_async(restored)

    # Someone deletes it: it comes back.
    await async_client.delete(RawDeployment, "svc-inference", namespace=namespace)

    async def recreated() -> None:
        dep = await deployment(async_client, "svc-inference", namespace)
        assert dep["metadata"].get("deletionTimestamp") is None

    await eventually_async(recreated, retry_on=(ApiError,))
    await wait_ready(async_client, "svc", namespace)


def triggers(kind: str, namespace: str) -> dict[str, float]:
    """`fusioninfer_controller_triggers_total` of one informer: which of its changes woke a reconcile."""
    registry = default_metrics().registry
    labels = {"controller": "inferenceservice", "resource": f"{kind}/{namespace}"}
    counts = {
        e: registry.get_sample_value("fusioninfer_controller_triggers_total", {**labels, "event": e})
        for e in ("add", "update", "delete")
    }
    return {e: v or 0.0 for e, v in counts.items()}


async def test_the_echo_of_its_own_write_wakes_no_reconcile(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    """A deleted ConfigMap wakes the operator; the ConfigMap it then creates comes back through
    the watch with the version the create returned, and that must not wake it again."""
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    await wait_ready(async_client, "svc", namespace)
    await asyncio.sleep(1)
    before = triggers("ConfigMap", namespace)
    await async_client.delete(RawConfigMap, "svc-epp-config", namespace=namespace)
    await eventually_async(
        lambda: async_client.get(RawConfigMap, "svc-epp-config", namespace=namespace), retry_on=(ApiError,)
    )
    await asyncio.sleep(1)  # the echo has arrived by now
    after = triggers("ConfigMap", namespace)
    assert after["delete"] == before["delete"] + 1
    assert after["add"] == before["add"], "the recreated ConfigMap's echo woke a reconcile"


async def test_invalid_spec_reports_field_path_once_without_hot_loop(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    running = await operator_factory(namespace)
    bad = monolithic(replicas=1)
    # Two containers with the same name: the pod template is an open object in the CRD (no CEL
    # rule reaches into it), so the operator's own validation is what stops this spec.
    containers = bad["spec"]["roles"][0]["template"]["spec"]["containers"]
    containers.append(copy.deepcopy(containers[0]))
    await apply_service(async_client, bad, namespace)

    async def invalid() -> dict[str, Any]:
        obj = await get_service(async_client, "svc", namespace)
        assert condition(obj, "Valid").get("status") == "False"
        return obj

    obj = await eventually_async(invalid)
    message = condition(obj, "Valid")["message"]
    assert "spec.roles[0].template.spec.containers[1].name: Duplicate value:" in message
    assert "vllm" in message
    assert obj["status"]["phase"] == "Invalid"

    async def warned() -> list[dict[str, Any]]:
        events = [
            dict(e)
            async for e in async_client.list(RawEvent, namespace=namespace)
            if dict(e)["involvedObject"]["name"] == "svc" and dict(e)["reason"] == "InvalidSpec"
        ]
        assert events
        return events

    events = await eventually_async(warned)
    assert "spec.roles[0].template.spec.containers[1].name" in events[0]["message"]
    assert len(events) == 1, "the warning is recorded once, not per retry"
    assert events[0].get("count", 1) == 1, "the warning is recorded once, not per retry"

    before = running.writes()
    await asyncio.sleep(3)
    assert running.writes() == before, "an invalid spec must not be retried in a hot loop"
    assert not await exists(async_client, RawDeployment, "svc-inference", namespace)

    # Fixing the spec recovers, and Valid flips back (nothing sticks).
    await apply_service(async_client, monolithic(replicas=1), namespace)
    fixed = await wait_ready(async_client, "svc", namespace)
    assert condition(fixed, "Valid")["status"] == "True"


async def test_the_apiserver_rejects_an_invalid_service_at_admission(async_client: AsyncClient, namespace: str) -> None:
    """The CRD's CEL rules run in the apiserver: a duplicate role name never reaches the operator,
    and `kubectl apply` tells the user which field and why."""
    bad = monolithic(replicas=1)
    bad["spec"]["roles"].append(copy.deepcopy(bad["spec"]["roles"][0]))
    with pytest.raises(ApiError) as rejected:
        await apply_service(async_client, bad, namespace)
    assert rejected.value.status.code == 422
    message = str(rejected.value.status.message)
    assert 'InferenceService.fusioninfer.io "svc" is invalid' in message
    assert "spec: Invalid value" in message
    assert "role names must be unique" in message
    assert not await exists(async_client, ISVC, "svc", namespace)


async def test_unknown_pod_field_in_a_template_is_reported_not_pruned(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    """Strict field validation: a misplaced field in the user's pod template makes the Deployment
    apply fail with the field's path, in status and in an Event, instead of silently vanishing."""
    running = await operator_factory(namespace)
    bad = monolithic(replicas=1)
    bad["spec"]["roles"][0]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    await apply_service(async_client, bad, namespace)

    async def reported() -> dict[str, Any]:
        obj = await get_service(async_client, "svc", namespace)
        messages = " ".join(c.get("message", "") for c in (obj.get("status") or {}).get("conditions") or [])
        assert "gpuCount" in messages, messages
        assert "field not declared in schema" in messages or "unknown field" in messages, messages
        return obj

    obj = await eventually_async(reported, timeout=30)
    assert condition(obj, "Ready").get("status") != "True"
    assert not await exists(async_client, RawDeployment, "svc-inference", namespace)

    async def warned() -> None:
        events = [
            dict(e)
            async for e in async_client.list(RawEvent, namespace=namespace)
            if dict(e)["involvedObject"]["name"] == "svc" and dict(e)["reason"] == "ApplyFailed"
        ]
        assert any("gpuCount" in e["message"] for e in events)

    await eventually_async(warned)
    assert running.writes() > 0

    await apply_service(async_client, monolithic(replicas=1), namespace)
    await wait_ready(async_client, "svc", namespace)


async def test_delete_garbage_collects_children(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    await wait_ready(async_client, "svc", namespace)
    await async_client.delete(ISVC, "svc", namespace=namespace)

    async def collected() -> None:
        assert not await exists(async_client, RawDeployment, "svc-inference", namespace)
        assert not await exists(async_client, RawDeployment, "svc-epp", namespace)
        assert not await exists(async_client, RawConfigMap, "svc-epp-config", namespace)

    await eventually_async(collected, timeout=60)


async def test_restarted_operator_converges_without_duplicates(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    first = await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=2)), namespace)
    # Kill it as soon as it has started creating children.
    await eventually_async(lambda: deployment(async_client, "svc-epp", namespace), retry_on=(ApiError,), interval=0.02)
    await first.stop()
    await apply_service(async_client, with_router(monolithic(replicas=3)), namespace)

    await operator_factory(namespace)
    obj = await wait_ready(async_client, "svc", namespace)
    assert obj["status"]["components"]["inference"]["readyReplicas"] == 3
    deployments = [dict(d) async for d in async_client.list(RawDeployment, namespace=namespace)]
    assert sorted(d["metadata"]["name"] for d in deployments) == ["svc-epp", "svc-inference"]


async def test_operator_survives_an_apiserver_restart(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, monolithic(replicas=1), namespace)
    await wait_ready(async_client, "svc", namespace)

    await asyncio.to_thread(cluster.restart_apiserver)

    # A change made after the restart is still picked up by the same operator.
    await apply_service(async_client, monolithic(replicas=2), namespace)

    async def scaled() -> None:
        assert (await deployment(async_client, "svc-inference", namespace))["spec"]["replicas"] == 2

    await eventually_async(scaled, timeout=60, retry_on=(ApiError, OSError))
    await wait_ready(async_client, "svc", namespace, timeout=60)


async def test_watching_many_namespaces_does_not_exhaust_the_connection_pool(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    # ~17 watches per namespace: 12 namespaces need more connections than httpx's default pool
    # of 100, which used to starve every apply, status write and lease renewal.
    extra = [f"{namespace[:50]}-w{i}" for i in range(11)]
    for name in extra:
        await async_client.create(Namespace(metadata=ObjectMeta(name=name)))
    try:
        await operator_factory([namespace, *extra])
        last = extra[-1]
        await apply_service(async_client, monolithic(replicas=1), last)
        obj = await wait_ready(async_client, "svc", last)
        assert obj["status"]["components"]["inference"]["readyReplicas"] == 1
    finally:
        for name in extra:
            await async_client.delete(Namespace, name)
