"""Run the operator in-process against the session's real control plane.

`operator_factory(namespace)` starts an `Operator` watching one namespace (so tests don't see
each other's services) in a background task of the test's event loop and stops it afterwards.
Its client is instrumented: `running.writes()` counts every write request it sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lightkube import AsyncClient
from tests.support.operator import OperatorFactory, RunningOperator

from fusioninfer.controller.operator import Operator, OperatorConfig
from fusioninfer.localcluster.cluster import LocalCluster
from fusioninfer.runtime.apply import instrument_client


@pytest.fixture
async def operator_factory(cluster: LocalCluster) -> AsyncIterator[OperatorFactory]:
    started: list[RunningOperator] = []

    async def start(namespace: str, *, workers: int = 2, kubeconfig: Any = None) -> RunningOperator:
        from lightkube import KubeConfig

        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_file(cluster.kubeconfig_path)
        client = AsyncClient(config=config, field_manager="fusioninfer")
        counter = instrument_client(client)
        op = Operator(client, OperatorConfig(namespaces=[namespace], workers=workers, resync_period=None))
        task = asyncio.create_task(op.run(), name=f"operator-{namespace}")
        running = RunningOperator(op, client, counter, task)
        started.append(running)
        for _ in range(200):
            if op.ready():
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("operator did not become ready in 10 s")
        return running

    yield start
    for running in started:
        await running.stop()
