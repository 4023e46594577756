"""Fixtures shared by the runtime integration tests (the cluster itself comes from ../conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient, KubeConfig
from prometheus_client import CollectorRegistry

from fusioninfer.kube.types import Obj
from fusioninfer.runtime.client import async_client
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.request_counter import RequestCounter


@pytest.fixture
def metrics() -> RuntimeMetrics:
    """A metrics bundle on a private registry (no clashes between tests, readable samples)."""
    return RuntimeMetrics(CollectorRegistry())


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
async def counted_client(cluster: Any, metrics: RuntimeMetrics, counter: RequestCounter) -> AsyncIterator[AsyncClient]:
    """The operator's own client (`runtime.client.async_client`: strict field validation), every
    request it sends counted in `counter` and in `metrics`."""
    config = KubeConfig.from_file(cluster.kubeconfig_path)
    client = async_client(config, field_manager="fusioninfer-tests", counter=counter, metrics=metrics)
    try:
        yield client
    finally:
        await client.close()


class Events:
    """Records an informer's events as (type, name, resourceVersion) plus the objects."""

    def __init__(self, informer: Informer) -> None:
        self.items: list[tuple[str, str, str | None]] = []
        self.objects: list[tuple[str, Obj]] = []
        informer.add_event_handler(self._add, self._update, self._delete)

    def _rec(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        self.items.append((kind, meta["name"], meta.get("resourceVersion")))
        self.objects.append((kind, obj))

    def _add(self, obj: Obj) -> None:
        self._rec("add", obj)

    def _update(self, old: Obj, new: Obj) -> None:
        self._rec("update", new)

    def _delete(self, obj: Obj) -> None:
        self._rec("delete", obj)

    def of(self, name: str) -> list[str]:
        """Event types seen for `name`, in order."""
        return [k for k, n, _ in self.items if n == name]

    def clear(self) -> None:
        self.items.clear()
        self.objects.clear()


@pytest.fixture
def record_events() -> type[Events]:
    """``ev = record_events(informer)``: start recording `informer`'s events."""
    return Events
