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
from lightkube import KubeConfig
from tests.support.operator import OperatorFactory, RunningOperator

from fusioninfer.controller.operator import Operator, OperatorConfig
from fusioninfer.runtime.client import async_client
from fusioninfer.runtime.request_counter import RequestCounter
from fusioninfer_dev.localcluster.cluster import LocalCluster


@pytest.fixture
async def operator_factory(cluster: LocalCluster) -> AsyncIterator[OperatorFactory]:
    started: list[RunningOperator] = []

    async def start(namespace: str | list[str], *, workers: int = 2, kubeconfig: Any = None) -> RunningOperator:
        config = KubeConfig.from_file(kubeconfig or cluster.kubeconfig_path)
        # The same client `fusioninfer run` uses (unbounded connection pool for the watches).
        counter = RequestCounter()
        client = async_client(config, field_manager="fusioninfer", counter=counter)
        namespaces = [namespace] if isinstance(namespace, str) else namespace
        op = Operator(client, OperatorConfig(namespaces=namespaces, workers=workers, resync_period=None))
        task = asyncio.create_task(op.run(), name=f"operator-{namespaces[0]}")
        running = RunningOperator(op, client, counter, task)
        started.append(running)
        for _ in range(600):
            if op.ready():
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("operator did not become ready in 30 s")
        return running

    yield start
    for running in started:
        await running.stop()
