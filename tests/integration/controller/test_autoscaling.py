"""Autoscaled roles on the real apiserver, with kube-controller-manager's real HPA controller.

The hand-over: the HPA, not the operator, sets the Deployment's replicas, a scale change made as
an autoscaler makes it stands, the operator does not write the workload in reply, and
`status.components.<role>.desiredReplicas` follows. A ratio role follows its leader's count.

And one scale-up end to end, all upstream but the pods: the stand-in model server reports its
queue in `vllm:num_requests_waiting`, the local cluster's feeder scrapes it into the custom
metrics API (sigs.k8s.io/custom-metrics-apiserver behind the aggregation layer), and the HPA
controller reads it there and scales the Deployment. Where no pod reports the metric (the tests
without pod processes), the HPA keeps the count within [minReplicas, maxReplicas].
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.types import PatchType
from tests.support.datapath import backlog, data_path
from tests.support.eventually import eventually, eventually_async
from tests.support.operator import OperatorFactory, RawDeployment, apply_service, exists, get_service, monolithic
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.podrunner import Timing

pytestmark = pytest.mark.integration

METRIC = {
    "type": "Pods",
    "pods": {"metric": {"name": "vllm:num_requests_waiting"}, "target": {"type": "AverageValue", "averageValue": "5"}},
}


def autoscaled(min_replicas: int = 2, max_replicas: int = 4, metric: dict[str, Any] = METRIC) -> dict[str, Any]:
    manifest = monolithic(replicas=1)
    manifest["spec"]["roles"][0]["autoscaling"] = {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [metric],
    }
    return manifest


async def replicas(client: AsyncClient, name: str, namespace: str) -> int:
    """spec.replicas of the Deployment; -1 while it does not exist."""
    if not await exists(client, RawDeployment, name, namespace):
        return -1
    obj = dict(await client.get(RawDeployment, name, namespace=namespace))
    return int(obj["spec"].get("replicas", 1))


async def desired(client: AsyncClient, namespace: str) -> int:
    status = (await get_service(client, "svc", namespace)).get("status") or {}
    return int(((status.get("components") or {}).get("inference") or {}).get("desiredReplicas", -1))


async def scale(client: AsyncClient, name: str, namespace: str, count: int) -> None:
    """What an autoscaler does: a write to the /scale subresource."""
    await client.patch(
        Deployment.Scale, name, {"spec": {"replicas": count}}, namespace=namespace, patch_type=PatchType.MERGE
    )


async def test_the_hpa_owns_the_count_and_the_operator_does_not_fight_it(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    running = await operator_factory(namespace)
    await apply_service(async_client, autoscaled(min_replicas=2), namespace)

    async def hpa_scaled_to_min() -> None:
        assert await exists(async_client, HorizontalPodAutoscaler, "svc-inference", namespace)
        assert await replicas(async_client, "svc-inference", namespace) == 2, "the real HPA controller sets it"
        assert await desired(async_client, namespace) == 2

    await eventually_async(hpa_scaled_to_min, timeout=60, interval=0.5)
    hpa = (await async_client.get(HorizontalPodAutoscaler, "svc-inference", namespace=namespace)).to_dict()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc-inference"}
    deployment = dict(await async_client.get(RawDeployment, "svc-inference", namespace=namespace))
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == "fusioninfer"]
    assert all("f:replicas" not in str(m.get("fieldsV1", {}).get("f:spec", {})) for m in ours), "we do not own it"

    await asyncio.sleep(2)
    before = [(m, p) for m, p in running.counter.recent if "/deployments/" in p and m != "GET"]
    await scale(async_client, "svc-inference", namespace, 3)

    async def status_follows() -> None:
        assert await desired(async_client, namespace) == 3

    await eventually_async(status_follows, timeout=30, interval=0.3)
    await asyncio.sleep(3)
    assert await replicas(async_client, "svc-inference", namespace) == 3, "the autoscaler's write stands"
    after = [(m, p) for m, p in running.counter.recent if "/deployments/" in p and m != "GET"]
    assert after == before, f"the operator wrote the Deployment in reply: {after[len(before) :]}"


async def test_the_hpa_scales_up_on_the_queue_the_pods_report(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster, tmp_path: Any
) -> None:
    """One pod with one sequence slot and three slow requests: two wait. At a target of one
    waiting request per pod the HPA wants ceil(2 / 1) = 2 replicas; with the second pod idle
    the average is then exactly on target, so it stays at 2 (within maxReplicas 4)."""
    metric = copy.deepcopy(METRIC)
    metric["pods"]["target"]["averageValue"] = "1"
    # 300 words at 100 ms: each request holds the slot for 30 s, longer than the feeder's 2 s
    # scrape plus the HPA controller's 15 s sync.
    timing = Timing(time_to_first_token_ms=0, inter_token_latency_ms=100, max_num_seqs=1)
    with data_path(cluster, namespace, tmp_path / "pods", timing=timing) as path:
        await operator_factory(namespace)
        await apply_service(async_client, autoscaled(min_replicas=1, max_replicas=4, metric=metric), namespace)

        def one_pod_serving() -> str:
            assert replicas_now(path.client, namespace) == 1
            servers = [u for k, u in path.runner.model_servers.items() if k[0] == namespace]
            # An assertion, so that `eventually` retries while the pod runner starts the server.
            assert len(servers) == 1, f"one model server runs for the pod, not {len(servers)}"
            (url,) = servers
            assert httpx.get(url, timeout=2, trust_env=False).status_code == 200, "the model server is up"
            return url.removeprefix("http://").split(":", 1)[0]

        ip = await asyncio.to_thread(
            eventually, one_pod_serving, timeout=90, interval=0.5, retry_on=(ApiError, httpx.HTTPError)
        )
        await asyncio.to_thread(backlog, ip, 8000, 3, words=300)

        def scaled_on_the_metric() -> dict[str, Any]:
            hpa = path.client.get(HorizontalPodAutoscaler, "svc-inference", namespace=namespace).to_dict()
            assert replicas_now(path.client, namespace) == 2, hpa.get("status")
            return hpa

        hpa = await asyncio.to_thread(eventually, scaled_on_the_metric, timeout=90, interval=0.5)
        (current,) = hpa["status"]["currentMetrics"]
        assert current["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
        conditions = {c["type"]: c for c in hpa["status"]["conditions"]}
        assert conditions["ScalingActive"]["reason"] == "ValidMetricFound", conditions
        assert hpa["status"]["desiredReplicas"] == 2

        async def status_follows() -> None:
            assert await desired(async_client, namespace) == 2

        await eventually_async(status_follows, timeout=30, interval=0.3)


def replicas_now(client: Any, namespace: str) -> int:
    return int(dict(client.get(RawDeployment, "svc-inference", namespace=namespace))["spec"].get("replicas", 1))


async def test_removing_autoscaling_hands_the_count_back_to_replicas(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, autoscaled(min_replicas=2), namespace)

    async def scaled() -> None:
        assert await replicas(async_client, "svc-inference", namespace) == 2

    await eventually_async(scaled, timeout=60, interval=0.5)
    plain = copy.deepcopy(autoscaled())
    del plain["spec"]["roles"][0]["autoscaling"]
    plain["spec"]["roles"][0]["replicas"] = 1
    await apply_service(async_client, plain, namespace)

    async def handed_back() -> None:
        assert not await exists(async_client, HorizontalPodAutoscaler, "svc-inference", namespace), "pruned"
        assert await replicas(async_client, "svc-inference", namespace) == 1
        assert await desired(async_client, namespace) == 1

    await eventually_async(handed_back, timeout=60, interval=0.5)


async def test_a_prefill_role_follows_its_decode_role_in_proportion(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    await operator_factory(namespace)
    manifest = (
        InferenceServiceWrapper()
        .prefiller(autoscaling={"ratioTo": {"role": "decode", "ratio": "1:2"}})
        .decoder(autoscaling={"minReplicas": 2, "maxReplicas": 8, "metrics": [METRIC]})
        .obj()
    )
    await apply_service(async_client, manifest, namespace)

    expected = {"decode": 2, "prefill": 1}

    async def proportion() -> None:
        assert await replicas(async_client, "svc-decode", namespace) == expected["decode"]
        assert await replicas(async_client, "svc-prefill", namespace) == expected["prefill"]

    await eventually_async(proportion, timeout=60, interval=0.5)
    await scale(async_client, "svc-decode", namespace, 6)  # as the decode role's HPA would
    expected.update(decode=6, prefill=3)
    await eventually_async(proportion, timeout=30, interval=0.5)


async def test_a_keda_role_gets_a_scaled_object_the_upstream_crd_accepts(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str
) -> None:
    """KEDA's controller does not run here (its image is a container); its CRD, as published,
    checks the ScaledObject the operator writes."""
    from fusioninfer.runtime.registry import default_registry

    scaled_object = default_registry.register("keda.sh/v1alpha1", "ScaledObject", plural="scaledobjects")
    await operator_factory(namespace)
    manifest = monolithic(replicas=1)
    manifest["spec"]["roles"][0]["autoscaling"] = {
        "provider": "keda",
        "minReplicas": 0,
        "maxReplicas": 4,
        "triggers": [{"type": "prometheus", "metadata": {
            "serverAddress": "http://prometheus.monitoring:9090",
            "query": "sum(vllm:num_requests_waiting{namespace='ns'})",
            "threshold": "5"}}],
    }  # fmt: skip
    await apply_service(async_client, manifest, namespace)

    async def created() -> dict[str, Any]:
        assert await exists(async_client, scaled_object, "svc-inference", namespace)
        return dict(await async_client.get(scaled_object, "svc-inference", namespace=namespace))

    obj = await eventually_async(created, timeout=60, interval=0.5)
    assert obj["spec"]["scaleTargetRef"]["name"] == "svc-inference"
    assert obj["spec"]["minReplicaCount"] == 0
    status = (await get_service(async_client, "svc", namespace))["status"]
    prerequisites = next(c for c in status["conditions"] if c["type"] == "PrerequisitesMet")
    assert prerequisites["status"] == "True", prerequisites
