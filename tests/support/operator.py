"""Helpers for tests that run the operator against the session's control plane.

`RunningOperator` wraps an in-process `Operator` whose client is instrumented, so a test can
count every write request it sent; the manifest helpers build the services tests apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap
from tests.support.eventually import eventually_async
from tests.support.wrappers import InferenceServiceWrapper, router_role

from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL
from fusioninfer.controller.operator import Operator
from fusioninfer.runtime.apply import apply
from fusioninfer.runtime.registry import default_registry, raw_resource
from fusioninfer.runtime.request_counter import RequestCounter

ISVC = default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)
RawDeployment = raw_resource(Deployment)
RawConfigMap = raw_resource(ConfigMap)


@dataclass
class RunningOperator:
    operator: Operator
    client: AsyncClient
    counter: RequestCounter
    task: asyncio.Task[None]
    stopped: bool = field(default=False)

    def writes(self) -> int:
        return self.counter.writes

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.client.close()


OperatorFactory = Callable[..., Awaitable[RunningOperator]]


async def apply_service(client: AsyncClient, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    body.pop("status", None)
    return await apply(client, body, "fusioninfer-tests")


async def get_service(client: AsyncClient, name: str, namespace: str) -> dict[str, Any]:
    return dict(await client.get(ISVC, name, namespace=namespace))


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def monolithic(
    name: str = "svc",
    replicas: int = 2,
    image: str = "vllm/vllm-openai:v0.11.0",
    args: list[str] | None = None,
) -> dict[str, Any]:
    """One GPU worker role with pod labels and annotations (so tests can see them carried over),
    its engine run with `args` (serving Qwen/Qwen3-8B unless given)."""
    return (
        InferenceServiceWrapper(name)
        .worker(
            replicas=replicas,
            image=image,
            args=["--model", "Qwen/Qwen3-8B"] if args is None else args,
            gpus=1,
            pod_labels={"team": "ml"},
            pod_annotations={"owner": "alice"},
        )
        .obj()
    )


def with_router(manifest: dict[str, Any], strategy: str | None = "prefix-cache", **fields: Any) -> dict[str, Any]:
    """`manifest` with a router role first, attached to the Gateway `inference-gateway`, with
    `strategy` (none when None) and other router `fields`."""
    out = copy.deepcopy(manifest)
    out["spec"]["roles"].insert(0, router_role(strategy, parent="inference-gateway", **fields))
    return out


async def deployment(client: AsyncClient, name: str, namespace: str) -> dict[str, Any]:
    return dict(await client.get(RawDeployment, name, namespace=namespace))


async def exists(client: AsyncClient, resource: Any, name: str, namespace: str) -> bool:
    try:
        await client.get(resource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True


async def wait_ready(client: AsyncClient, name: str, namespace: str, timeout: float = 60) -> dict[str, Any]:  # noqa: ASYNC109
    async def ready() -> dict[str, Any]:
        """Ready for the spec as it is now: a Ready status left from the previous generation (the
        operator has not seen the edit yet) does not count."""
        obj = await get_service(client, name, namespace)
        status = obj.get("status") or {}
        assert status.get("observedGeneration") == obj["metadata"].get("generation"), status
        assert condition(obj, "Ready").get("status") == "True", status.get("conditions")
        return obj

    return await eventually_async(ready, timeout=timeout, interval=0.2)
