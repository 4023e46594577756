"""Requests through what the operator deploys: Envoy -> the real GIE endpoint picker -> pods.

The operator runs in-process on the session's control plane; the local gateway programs the
upstream Envoy from the Gateway, HTTPRoute and InferencePool; the pod runner runs the rendered
picker Deployment's pod as the real GIE picker (its args, its ConfigMap) and each serving pod as
a stand-in model server at the pod's IP (docs/routing.md). Which pod served a request is read
from Envoy's access log (the endpoint the picker chose), and checked against the model server's
own header.

Load is made the way it happens on a cluster: slow requests sent straight at one pod, which
its metrics then report, and which the picker scrapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Pod
from tests.support.datapath import DataPath, busy, data_path
from tests.support.eventually import eventually_async
from tests.support.operator import (
    OperatorFactory,
    RawDeployment,
    apply_service,
    condition,
    get_service,
    monolithic,
    wait_ready,
    with_router,
)
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

SERVICE = "svc"


@pytest.fixture
def path(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[DataPath]:
    with data_path(cluster, namespace, tmp_path / "pods") as dp:
        yield dp


async def serving_pods(path: DataPath, namespace: str) -> dict[str, str]:
    """Pod name -> IP of the service's serving pods that have a model server running."""

    def read() -> dict[str, str]:
        pods = path.client.list(Pod, namespace=namespace, labels={"fusioninfer.io/serving": "true"})
        running = {key[1].split("/", 1)[1] for key in path.runner.running}
        return {p.metadata.name: p.status.podIP for p in pods if p.metadata.name in running and p.status.podIP}

    return await asyncio.to_thread(read)


async def ready_with_pods(
    path: DataPath, client: Any, namespace: str, count: int, model: str = "Qwen/Qwen3-8B"
) -> dict[str, str]:
    await wait_ready(client, SERVICE, namespace, timeout=90)

    async def all_running() -> dict[str, str]:
        pods = await serving_pods(path, namespace)
        assert len(pods) == count, pods
        return pods

    pods = await eventually_async(all_running, timeout=60, interval=0.3)
    await asyncio.to_thread(path.served, "hello", model)  # the picker has seen them
    return pods


async def test_the_seed_request_is_answered_through_the_gateway(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(SERVICE), "prefix-cache"), namespace)
    pods = await ready_with_pods(path, async_client, namespace, 2)

    reply = await asyncio.to_thread(path.chat, "Hello, how are you?")

    assert reply.status == 200, reply
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"] == "Hello, how are you?"
    assert answer["model"] == "Qwen/Qwen3-8B"
    assert reply.pod in pods
    last = await asyncio.to_thread(path.logged, reply)
    assert last["upstream"] == f"{pods[reply.pod]}:8000", "Envoy connected to the pod that answered"
    assert last["picked"] == last["upstream"], "and that is the endpoint the picker chose"
    route = condition(await get_service(async_client, SERVICE, namespace), "RouteReady")
    assert route["status"] == "True", route


async def test_prefix_cache_sends_a_shared_prefix_to_one_pod(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(SERVICE), "prefix-cache"), namespace)
    await ready_with_pods(path, async_client, namespace, 2)
    prefix = " ".join(f"context-{i}" for i in range(120))

    first = await asyncio.to_thread(path.chat, f"{prefix} question 0")
    others = [await asyncio.to_thread(path.chat, f"{prefix} question {i}") for i in range(1, 8)]

    assert {r.status for r in [first, *others]} == {200}
    assert {r.pod for r in others} == {first.pod}, [r.pod for r in others]


@pytest.mark.parametrize("strategy", ["queue-size", "kv-cache-utilization"])
async def test_load_aware_strategies_prefer_the_less_loaded_pod(
    strategy: str, path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(SERVICE), strategy), namespace)
    pods = await ready_with_pods(path, async_client, namespace, 2)
    loaded, idle = sorted(pods)
    # queue-size scores waiting requests: more than the 5 sequence slots; kv-cache the slots used.
    count = 8 if strategy == "queue-size" else 4

    def through_gateway_while_loaded() -> list[str]:
        with busy(pods[loaded], 8000, count):
            return [path.chat(f"request {i}").pod for i in range(6)]

    served = await asyncio.to_thread(through_gateway_while_loaded)

    assert served == [idle] * 6, served


async def test_lora_affinity_prefers_the_pod_with_the_adapter_active(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    args = ["--model", "Qwen/Qwen3-8B", "--enable-lora", "--max-loras", "2", "--lora-modules", "sql-lora=/adapters/sql"]
    await apply_service(async_client, with_router(monolithic(SERVICE, args=args), "lora-affinity"), namespace)
    pods = await ready_with_pods(path, async_client, namespace, 2)
    warm = sorted(pods)[0]  # the other pod has no request for the adapter

    def through_gateway_while_active() -> list[str]:
        with busy(pods[warm], 8000, 1, model="sql-lora"):
            return [path.chat("select 1", model="sql-lora").pod for _ in range(5)]

    served = await asyncio.to_thread(through_gateway_while_active)

    assert served == [warm] * 5, served


async def test_a_strategy_change_restarts_the_picker_on_its_new_config(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    created = await apply_service(async_client, with_router(monolithic(SERVICE), "prefix-cache"), namespace)
    pods = await ready_with_pods(path, async_client, namespace, 2)
    before = await picker_pods(path, namespace)

    await apply_service(async_client, with_router(monolithic(SERVICE), "queue-size"), namespace)
    await wait_ready(async_client, SERVICE, namespace, timeout=90)

    async def new_picker_serving() -> set[str]:
        now = await picker_pods(path, namespace)
        assert now, "a picker serves"
        assert not now & before, (before, now)
        assert "queue-scorer" in picker_config(path, namespace), "the picker runs the new config"
        return now

    await eventually_async(new_picker_serving, timeout=60, interval=0.5)
    loaded, idle = sorted(pods)

    def while_loaded() -> list[str]:
        with busy(pods[loaded], 8000, 8):
            return [path.served(f"after the change {i}").pod for i in range(4)]

    assert await asyncio.to_thread(while_loaded) == [idle] * 4
    assert (await get_service(async_client, SERVICE, namespace))["metadata"]["uid"] == created["metadata"]["uid"]


async def picker_pods(path: DataPath, namespace: str) -> set[str]:
    def read() -> set[str]:
        return {pod for (ns, pod) in path.runner.pickers if ns == namespace}

    return await asyncio.to_thread(read)


def picker_config(path: DataPath, namespace: str) -> str:
    """The config file the running picker was started on (as the kubelet projected it)."""
    texts = []
    for (_uid, pod, _container), process in path.runner.running.items():
        if process.picker is not None and process.alive() and pod.startswith(f"{namespace}/"):
            config = next(a for a in process.argv if a.startswith("--config-file=")).split("=", 1)[1]
            texts.append(Path(config).read_text())
    return "\n".join(texts)


async def test_no_ready_endpoint_gets_a_readable_error_not_a_hang(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(SERVICE), "prefix-cache"), namespace)
    await ready_with_pods(path, async_client, namespace, 2)
    await apply_service(async_client, with_router(monolithic(SERVICE, replicas=0), "prefix-cache"), namespace)

    async def no_model_server() -> None:
        assert await serving_pods(path, namespace) == {}

    await eventually_async(no_model_server, timeout=60, interval=0.3)

    async def refused() -> Any:
        reply = await asyncio.to_thread(path.chat, "anyone there?")
        assert reply.status >= 500, reply
        return reply

    reply = await eventually_async(refused, timeout=30, interval=0.5)
    assert reply.seconds < 15, "answered, not left hanging"
    assert reply.body.strip(), "the error has a body a user can read"


async def test_a_picker_that_cannot_start_is_reported_and_answered(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    """A user's endpointPickerConfig whose profile names a plugin it never declares: the GIE
    picker exits at start, the gateway answers 503 saying why, and RouteReady says so."""
    await operator_factory(namespace)
    broken = (
        "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
        "plugins:\n- type: queue-scorer\n- type: max-score-picker\n- type: single-profile-handler\n"
        "schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: undeclared-scorer\n"
        "  - pluginRef: max-score-picker\n"
    )
    manifest = with_router(monolithic(SERVICE), strategy=None, endpointPickerConfig=broken)
    await apply_service(async_client, manifest, namespace)

    async def route_not_ready() -> dict[str, Any]:
        route = condition(await get_service(async_client, SERVICE, namespace), "RouteReady")
        assert route.get("status") == "False", route
        assert route.get("reason") == "EndpointPickerUnavailable", route
        return route

    route = await eventually_async(route_not_ready, timeout=90, interval=0.5)
    assert "not serving" in route["message"], route
    reply = await asyncio.to_thread(path.chat, "hello")
    assert reply.status == 503, reply
    assert "endpoint picker" in reply.json()["error"]["message"]
    deployment = dict(await async_client.get(RawDeployment, f"{SERVICE}-epp", namespace=namespace))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith("epp:v1.2.1")


async def test_a_service_that_says_only_its_model_answers_for_its_served_name_and_adapters(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    """Issue 15: no pod template at all; the pods run what the model fields expand to, and the
    gateway answers for the served name and each declared adapter, and refuses other names."""
    await operator_factory(namespace)
    manifest = (
        InferenceServiceWrapper(SERVICE)
        .model(
            name="Qwen/Qwen3-8B",
            servedName="qwen3-8b",
            loraAdapters=[{"name": "sql-lora", "source": "org/sql-lora"}],
        )
        .router("lora-affinity", parent="inference-gateway")
        .role(  # a worker without a template: the model fields say what it runs
            {"name": "inference", "componentType": "worker", "replicas": 2,
             "resources": {"limits": {"nvidia.com/gpu": "1"}}}
        )
        .obj()
    )  # fmt: skip
    await apply_service(async_client, manifest, namespace)
    pods = await ready_with_pods(path, async_client, namespace, 2, model="qwen3-8b")

    for model in ("qwen3-8b", "sql-lora"):
        reply = await asyncio.to_thread(path.chat, "hello", model)
        assert reply.status == 200, reply
        assert reply.json()["model"] == model
        assert reply.pod in pods
    unknown = await asyncio.to_thread(path.chat, "hello", "Qwen/Qwen3-8B")
    assert unknown.status == 404, "the engine serves the served name, not the repository id"


async def test_several_models_share_one_gateway_by_the_model_they_name(
    path: DataPath, operator_factory: OperatorFactory, async_client: Any, namespace: str
) -> None:
    """Issue 18: the body-based router (real, cmd/bbr v1.2.1) puts the request's model in a
    header each service's route matches; a model nobody serves gets a 404 that says so; a second
    service claiming a model another already serves is told, not silently shadowed."""
    await operator_factory(namespace)
    await apply_service(
        async_client, with_router(monolithic("qwen", replicas=1, args=["--model", "Qwen/Qwen3-8B"])), namespace
    )
    await apply_service(
        async_client,
        with_router(monolithic("llama", replicas=1, args=["--model", "meta-llama/Llama-3.1-8B-Instruct"])),
        namespace,
    )
    for name in ("qwen", "llama"):
        await wait_ready(async_client, name, namespace, timeout=90)

    def pods_of(service: str) -> set[str]:
        labels = {"fusioninfer.io/service": service, "fusioninfer.io/serving": "true"}
        return {p.metadata.name for p in path.client.list(Pod, namespace=namespace, labels=labels)}

    for service, model in (("qwen", "Qwen/Qwen3-8B"), ("llama", "meta-llama/Llama-3.1-8B-Instruct")):
        reply = await asyncio.to_thread(path.served, "which one?", model)
        assert reply.pod in await asyncio.to_thread(pods_of, service), (model, reply)
        assert reply.json()["model"] == model
    unknown = await asyncio.to_thread(path.chat, "hello", "no-such-model")
    assert unknown.status == 404
    assert "model" in unknown.json()["error"]["message"]

    await apply_service(
        async_client, with_router(monolithic("dup", replicas=1, args=["--model", "Qwen/Qwen3-8B"])), namespace
    )

    async def conflict_reported() -> dict[str, Any]:
        route = condition(await get_service(async_client, "dup", namespace), "RouteReady")
        assert route.get("reason") == "ModelNameConflict", route
        return route

    route = await eventually_async(conflict_reported, timeout=60, interval=0.5)
    assert route["status"] == "False"
    assert "'Qwen/Qwen3-8B'" in route["message"]
    assert "InferenceService qwen" in route["message"]
    assert condition(await get_service(async_client, "qwen", namespace), "RouteReady")["status"] == "True"

    def conflict_events() -> list[str]:
        from lightkube.resources.core_v1 import Event

        events = path.client.list(Event, namespace=namespace, fields={"involvedObject.name": "dup"})
        return [e.message or "" for e in events if e.reason == "ModelNameConflict"]

    async def event_sent() -> None:
        assert await asyncio.to_thread(conflict_events), "a Warning Event names the conflict"

    await eventually_async(event_sent, timeout=30, interval=0.5)
    reply = await asyncio.to_thread(path.served, "still mine", "Qwen/Qwen3-8B")
    assert reply.pod in await asyncio.to_thread(pods_of, "qwen"), "the older service keeps its model"
