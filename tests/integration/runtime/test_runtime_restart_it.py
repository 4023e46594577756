"""The informer across an apiserver outage: it must recover on its own, and an informer that
resumes from a resourceVersion the restarted apiserver no longer serves (410 Gone) must relist and
report what it missed as synthetic events.

Why a restart rather than "watch from resourceVersion 1": a freshly started apiserver's watch
cache may still cover every revision since etcd was created, so an old resourceVersion is not
reliably expired; after a restart the watch cache starts at the current revision, and resuming
from any earlier one is answered with 410 Gone: exactly what happens to a real operator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from tests.support.eventually import eventually_async

from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

EventsFactory = Any  # the `record_events` fixture (see conftest.py)


def configmap(name: str, namespace: str, **data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace), data=data or None)


async def test_recovers_from_apiserver_restart_and_relists_after_410(
    cluster: LocalCluster,
    async_client: AsyncClient,
    namespace: str,
    metrics: RuntimeMetrics,
    record_events: EventsFactory,
) -> None:
    for name in ("stays", "changes", "goes"):
        await async_client.create(configmap(name, namespace, v="1"))
    # `live` keeps running through the outage; `stale` is stopped while things change, and
    # resumes (from its old resourceVersion) only after the restart.
    live = Informer(async_client, ConfigMap, namespace=namespace, metrics=metrics, backoff_max=1.0, name="live")
    stale = Informer(async_client, ConfigMap, namespace=namespace, metrics=metrics, backoff_max=1.0, name="stale")
    live_ev, stale_ev = record_events(live), record_events(stale)
    live.start()
    stale.start()
    try:
        async with asyncio.timeout(10):
            await live.wait_synced()
            await stale.wait_synced()
        await stale.stop()  # the cache and resourceVersion are kept
        stale_ev.clear()
        await async_client.patch(ConfigMap, "changes", {"data": {"v": "2"}}, namespace=namespace)
        await async_client.delete(ConfigMap, "goes", namespace=namespace)
        await async_client.create(configmap("new", namespace))
        await eventually_async(lambda: live.get(namespace, "new") is not None, timeout=10)

        # Outage: the apiserver is down for a while (the informer's requests fail and back off).
        await asyncio.to_thread(cluster.stop_apiserver)
        await asyncio.sleep(2.0)
        assert live.has_synced(), "the cache stays readable during an outage"
        assert live.get(namespace, "stays") is not None
        await asyncio.to_thread(cluster.start_apiserver)

        # `live` resumes by itself: a change made after the restart reaches it.
        await async_client.create(configmap("after-restart", namespace))
        await eventually_async(lambda: live.get(namespace, "after-restart") is not None, timeout=20)
        assert live.last_error is not None, "the outage must have been noticed"
        await async_client.delete(ConfigMap, "stays", namespace=namespace)
        await eventually_async(lambda: live_ev.of("stays") == ["add", "delete"], timeout=20)

        # `stale` resumes from a resourceVersion the fresh watch cache does not have: 410, relist.
        stale.start()
        await eventually_async(lambda: stale.get(namespace, "after-restart") is not None, timeout=20)
        assert stale.relists == 2
        assert stale_ev.of("goes") == ["delete"], "a vanished object gets a synthetic delete"
        goes = next(o for k, o in stale_ev.objects if k == "delete" and o["metadata"]["name"] == "goes")
        assert goes["data"] == {"v": "1"}, "the synthetic delete carries the last known state"
        assert stale_ev.of("changes") == ["update"]
        changed = stale.get(namespace, "changes")
        assert changed is not None
        assert changed["data"] == {"v": "2"}
        assert stale_ev.of("new") == ["add"]
        assert stale_ev.of("after-restart") == ["add"]
        assert stale_ev.of("stays") == ["delete"]
        expired = metrics.registry.get_sample_value(
            "fusioninfer_informer_relists_total", {"resource": "stale", "reason": "expired"}
        )
        assert expired == 1
        # and its watch works again afterwards
        await async_client.create(configmap("later", namespace))
        await eventually_async(lambda: stale_ev.of("later") == ["add"], timeout=10)
        await eventually_async(lambda: live_ev.of("later") == ["add"], timeout=10)
    finally:
        await live.stop()
        await stale.stop()
