"""Informer and controller against a real kube-apiserver: list+watch, pagination, label selection,
child-to-owner mapping. (Relist after 410 and apiserver restarts: test_runtime_restart_it.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.core_v1 import ConfigMap
from tests.support.eventually import eventually_async

from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.loop import Controller, ObjectKey, Result
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.request_counter import RequestCounter

pytestmark = pytest.mark.integration

EventsFactory = Any  # the `record_events` fixture (see conftest.py)


def configmap(name: str, namespace: str, labels: dict[str, str] | None = None, **data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace, labels=labels), data=data or None)


async def test_list_then_watch_sees_add_update_delete(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics, record_events: EventsFactory
) -> None:
    await async_client.create(configmap("before", namespace, k="v"))
    inf = Informer(async_client, ConfigMap, namespace=namespace, metrics=metrics)
    ev = record_events(inf)
    async with inf:
        async with asyncio.timeout(10):
            await inf.wait_synced()
        before = inf.get(namespace, "before")
        assert before is not None
        assert before["data"] == {"k": "v"}
        assert "managedFields" not in before["metadata"], "managedFields must be stripped from the cache"
        assert (before["apiVersion"], before["kind"]) == ("v1", "ConfigMap")
        assert ev.of("before") == ["add"]

        await async_client.create(configmap("x", namespace, a="1"))
        await eventually_async(lambda: ev.of("x") == ["add"], timeout=10)
        await async_client.patch(ConfigMap, "x", {"data": {"a": "2"}}, namespace=namespace)
        await eventually_async(lambda: ev.of("x") == ["add", "update"], timeout=10)
        live = inf.get(namespace, "x")
        assert live is not None
        assert live["data"] == {"a": "2"}
        assert "managedFields" not in live["metadata"]
        await async_client.delete(ConfigMap, "x", namespace=namespace)
        await eventually_async(lambda: ev.of("x") == ["add", "update", "delete"], timeout=10)
        assert inf.get(namespace, "x") is None
        assert inf.relists == 1, "no relist needed in the normal case"


async def test_initial_list_is_paginated(
    async_client: AsyncClient,
    counted_client: AsyncClient,
    counter: RequestCounter,
    namespace: str,
    metrics: RuntimeMetrics,
) -> None:
    labels = {"runtime-test": "page"}
    for i in range(25):
        await async_client.create(configmap(f"p{i:02d}", namespace, labels=labels))
    inf = Informer(counted_client, ConfigMap, namespace=namespace, labels=labels, page_size=10, metrics=metrics)
    async with inf:
        async with asyncio.timeout(10):
            await inf.wait_synced()
        assert sorted(n for _, n in inf.list_keys()) == [f"p{i:02d}" for i in range(25)]
    lists = [p for m, p in counter.recent if m == "GET" and "watch=" not in p and "/configmaps" in p]
    assert len(lists) == 3, f"25 objects at 10 per page need 3 requests, saw {lists}"
    assert all("limit=10" in p for p in lists)
    assert sum("continue=" in p for p in lists) == 2


async def test_label_selector_limits_the_cache(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics, record_events: EventsFactory
) -> None:
    inf = Informer(async_client, ConfigMap, namespace=namespace, labels={"team": "a"}, metrics=metrics)
    ev = record_events(inf)
    async with inf:
        async with asyncio.timeout(10):
            await inf.wait_synced()
        await async_client.create(configmap("mine", namespace, labels={"team": "a"}))
        await async_client.create(configmap("theirs", namespace, labels={"team": "b"}))
        await eventually_async(lambda: ev.of("mine") == ["add"], timeout=10)
        assert inf.get(namespace, "theirs") is None
        assert [o["metadata"]["name"] for o in inf.by_label("team", "a")] == ["mine"]
        # Relabelled out of the selector: the watch reports it as deleted.
        await async_client.patch(ConfigMap, "mine", {"metadata": {"labels": {"team": "b"}}}, namespace=namespace)
        await eventually_async(lambda: ev.of("mine") == ["add", "delete"], timeout=10)
        assert inf.by_label("team", "a") == []
    assert ev.of("theirs") == []


async def test_controller_maps_owned_child_to_owner(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics
) -> None:
    owner = await async_client.create(configmap("owner", namespace, labels={"role": "owner"}))
    reconciled: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        reconciled.append(key)
        return Result()

    owners = Informer(async_client, ConfigMap, namespace=namespace, labels={"role": "owner"}, metrics=metrics)
    children = Informer(async_client, ConfigMap, namespace=namespace, labels={"role": "child"}, metrics=metrics)
    ctrl = Controller("owned-it", reconcile, workers=2, metrics=metrics)
    ctrl.watch_primary(owners)
    ctrl.watch_owned(children, "v1", "ConfigMap")
    runner = asyncio.create_task(ctrl.run())
    try:
        await eventually_async(lambda: ObjectKey(namespace, "owner") in reconciled, timeout=10)
        assert ctrl.ready()
        reconciled.clear()
        ref = OwnerReference(apiVersion="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, controller=True)
        await async_client.create(
            ConfigMap(metadata=ObjectMeta(name="child", namespace=namespace, labels={"role": "child"},
                                          ownerReferences=[ref]))
        )  # fmt: skip
        await async_client.create(configmap("orphan", namespace, labels={"role": "child"}))
        await eventually_async(lambda: reconciled == [ObjectKey(namespace, "owner")], timeout=10)
        # drift on the child wakes the owner again; the orphan never wakes anyone
        await async_client.patch(ConfigMap, "child", {"data": {"edited": "by hand"}}, namespace=namespace)
        await eventually_async(lambda: len(reconciled) == 2, timeout=10)
        await async_client.patch(ConfigMap, "orphan", {"data": {"edited": "by hand"}}, namespace=namespace)
        await async_client.delete(ConfigMap, "child", namespace=namespace)
        await eventually_async(lambda: len(reconciled) == 3, timeout=10)
        await asyncio.sleep(0.3)
        assert reconciled == [ObjectKey(namespace, "owner")] * 3
    finally:
        await ctrl.stop()
        await asyncio.wait_for(runner, 10)
    assert not owners.running, "the controller stops the informers it started"
    assert not children.running


async def test_all_namespaces_and_cluster_scoped(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics, record_events: EventsFactory
) -> None:
    from lightkube.resources.core_v1 import Namespace

    marker = {"runtime-test-all-ns": namespace}  # unique to this test
    everywhere = Informer(async_client, ConfigMap, labels=marker, metrics=metrics)  # namespace=None: all
    namespaces = Informer(async_client, Namespace, metrics=metrics)  # cluster-scoped
    ev = record_events(everywhere)
    async with everywhere, namespaces:
        async with asyncio.timeout(10):
            await everywhere.wait_synced()
            await namespaces.wait_synced()
        ns_obj = namespaces.get(None, namespace)
        assert ns_obj is not None, "cluster-scoped objects are keyed with an empty namespace"
        assert namespaces.get("", namespace) is ns_obj
        assert ns_obj["kind"] == "Namespace"
        await async_client.create(configmap("here", namespace, labels=marker))
        await async_client.create(configmap("there", "default", labels=marker))
        try:
            await eventually_async(lambda: sorted(n for _, n, _ in ev.items) == ["here", "there"], timeout=10)
            assert [o["metadata"]["name"] for o in everywhere.list(namespace="default")] == ["there"]
            assert [o["metadata"]["name"] for o in everywhere.list(namespace=namespace)] == ["here"]
        finally:
            await async_client.delete(ConfigMap, "there", namespace="default")
