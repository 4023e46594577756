"""Server-side apply helpers against a real apiserver: what the apiserver returns (defaults,
normalised quantities) still satisfies `needs_apply`, so an unchanged desired state costs zero
writes; drift, spec changes and removed fields are detected and repaired; CRD kinds work through
generic resources, including the status subresource."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from tests.support.eventually import eventually_async

from fusioninfer.install.crds import apply_crds
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.apply import apply, apply_status, delete, get
from fusioninfer.runtime.diff import APPLIED_HASH_ANNOTATION, first_difference, needs_apply, with_hash_annotation
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.registry import KindRegistry
from fusioninfer.runtime.request_counter import RequestCounter
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

MANAGER = "runtime-it"


def deployment(namespace: str, replicas: int = 1, image: str = "nginx:1.25") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "args": ["--port", "8080"],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "serve"}, {"name": "EMPTY", "value": ""}],
                            # written in non-canonical forms on purpose: the apiserver returns "1"/"1Gi"
                            "resources": {
                                "limits": {"cpu": "1000m", "memory": "1024Mi"},
                                "requests": {"cpu": 0.5, "memory": "512Mi"},
                            },
                        }
                    ],
                    "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}}],
                },
            },
        },
    }


def service(namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {
            "selector": {"app": "web"},
            # SSA needs `protocol` on every Service port (it is part of the list-map key).
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


async def converge(client: AsyncClient, desired: list[Obj], caches: dict[str, Informer]) -> int:
    """One level-triggered pass: apply what the cache says differs. Returns applies sent."""
    sent = 0
    for manifest in desired:
        meta = manifest["metadata"]
        live = caches[manifest["kind"]].get(meta["namespace"], meta["name"])
        if needs_apply(manifest, live):
            await apply(client, manifest, MANAGER)
            sent += 1
    return sent


async def test_second_apply_is_not_needed_and_drift_is_repaired(
    counted_client: AsyncClient, counter: RequestCounter, namespace: str, metrics: RuntimeMetrics
) -> None:
    deps = Informer(counted_client, Deployment, namespace=namespace, metrics=metrics)
    svcs = Informer(counted_client, Service, namespace=namespace, metrics=metrics)
    caches = {"Deployment": deps, "Service": svcs}
    async with deps, svcs:
        async with asyncio.timeout(10):
            await deps.wait_synced()
            await svcs.wait_synced()
        desired = [with_hash_annotation(deployment(namespace)), with_hash_annotation(service(namespace))]
        assert await converge(counted_client, desired, caches) == 2
        assert counter.writes == 2

        async def settled() -> bool:
            return all(
                first_difference(d, caches[d["kind"]].get(namespace, d["metadata"]["name"])) is None for d in desired
            )

        await eventually_async(settled, timeout=10)
        # The apiserver's version (defaults, "1"/"1Gi", protocol, status...) satisfies the desired one:
        live_dep = deps.get(namespace, "web")
        assert live_dep is not None
        limits = live_dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits == {"cpu": "1", "memory": "1Gi"}, "the apiserver normalises quantities"
        assert live_dep["spec"]["revisionHistoryLimit"] == 10, "and fills in defaults"

        # Unchanged desired state: repeated passes send nothing, also while the Deployment
        # controller keeps updating the status (it has no pods to run here).
        counter.reset()
        for _ in range(5):
            assert await converge(counted_client, desired, caches) == 0
            await asyncio.sleep(0.1)
        assert counter.writes == 0, counter.recent_writes()

        # Drift by hand (another field manager changes the image): detected and repaired.
        await counted_client.patch(
            Deployment,
            "web",
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "evil:latest"}]}}}},
            namespace=namespace,
        )
        await eventually_async(lambda: needs_apply(desired[0], deps.get(namespace, "web")), timeout=10)
        assert await converge(counted_client, desired, caches) == 1
        await eventually_async(settled, timeout=10)
        repaired = deps.get(namespace, "web")
        assert repaired is not None
        assert repaired["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"

        # A removed field: invisible to a subset test, visible through the hash annotation.
        smaller = deployment(namespace)
        del smaller["spec"]["template"]["spec"]["containers"][0]["args"]
        assert not needs_apply(smaller, repaired)
        smaller = with_hash_annotation(smaller)
        assert needs_apply(smaller, repaired)
        desired[0] = smaller
        assert await converge(counted_client, desired, caches) == 1
        await eventually_async(settled, timeout=10)
        trimmed = deps.get(namespace, "web")
        assert trimmed is not None
        assert "args" not in trimmed["spec"]["template"]["spec"]["containers"][0], "SSA removed our old field"
        assert (
            trimmed["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
            == smaller["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
        )

        # A spec change is detected.
        desired[0] = with_hash_annotation(deployment(namespace, replicas=3))
        assert needs_apply(desired[0], deps.get(namespace, "web"))

    # delete / get helpers
    assert await get(counted_client, "v1", "Service", "web", namespace) is not None
    assert await delete(counted_client, "v1", "Service", "web", namespace) is True
    assert await delete(counted_client, "v1", "Service", "web", namespace) is False
    assert await get(counted_client, "v1", "Service", "web", namespace) is None


WIDGET_GROUP = "runtime-test.fusioninfer.io"
WIDGET_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{WIDGET_GROUP}"},
    "spec": {
        "group": WIDGET_GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


async def test_crd_kinds_through_generic_resources(
    async_client: AsyncClient, cluster: LocalCluster, namespace: str, metrics: RuntimeMetrics, record_events: Any
) -> None:
    # The CRD goes in as `fusioninfer install` puts ours: applied, then waited for until Established.
    with cluster.client(field_manager=MANAGER) as sync_client:
        await asyncio.to_thread(apply_crds, sync_client, [WIDGET_CRD], 20.0, MANAGER)
    registry = KindRegistry()
    widget_cls = registry.resolve(f"{WIDGET_GROUP}/v1", "Widget")  # plural derived: widgets
    inf = Informer(async_client, widget_cls, namespace=namespace, metrics=metrics)
    ev = record_events(inf)
    widget: Obj = {
        "apiVersion": f"{WIDGET_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3, "resources": {"limits": {"cpu": "2000m"}}},
    }

    async def applied_widget() -> Obj | None:
        try:
            return await apply(async_client, widget, MANAGER, registry=registry)
        except ApiError as exc:  # the new API may take a moment to be served
            if exc.status.code == 404:
                return None
            raise

    async with inf:
        live = await eventually_async(applied_widget, timeout=20)
        assert live["spec"]["size"] == 3
        async with asyncio.timeout(10):
            await inf.wait_synced()
        await eventually_async(lambda: ev.of("w1") == ["add"], timeout=10)
        cached = inf.get(namespace, "w1")
        assert cached is not None
        assert "managedFields" not in cached["metadata"]
        assert not needs_apply(widget, cached)
        # status subresource
        status_doc = {**copy.deepcopy(widget), "status": {"phase": "Ready"}}
        del status_doc["spec"]
        out = await apply_status(async_client, status_doc, MANAGER, registry=registry)
        assert out["status"] == {"phase": "Ready"}
        await eventually_async(lambda: (inf.get(namespace, "w1") or {}).get("status") == {"phase": "Ready"}, timeout=10)
        assert await delete(async_client, f"{WIDGET_GROUP}/v1", "Widget", "w1", namespace, registry=registry)
        await eventually_async(lambda: ev.of("w1")[-1:] == ["delete"], timeout=10)
    await delete(async_client, "apiextensions.k8s.io/v1", "CustomResourceDefinition", WIDGET_CRD["metadata"]["name"])
