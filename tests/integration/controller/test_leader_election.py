"""Two `fusioninfer run` processes against the real control plane: one leads, the other takes over.

These run the real console script as subprocesses (not in-process operators) because what is
under test is process-level behaviour: a replica that is SIGKILLed never releases its Lease, and
the survivor must wait for it to expire, then reconcile on its own.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import ApiError, AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from tests.support.eventually import eventually_async
from tests.support.operator import apply_service, condition, get_service, monolithic

from fusioninfer.runtime.registry import raw_resource
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.processes import ProcessRecord

pytestmark = pytest.mark.integration

RawDeployment = raw_resource(Deployment)
RawLease = raw_resource(Lease)
LEASE = "fusioninfer-controller"
LEASE_DURATION = 4.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_replica(cluster: LocalCluster, name: str, namespace: str, health_port: int = 0) -> ProcessRecord:
    exe = Path(sys.executable).with_name("fusioninfer")
    argv = [
        str(exe),
        "run",
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "-n",
        namespace,
        "--leader-elect",
        "--leader-election-namespace",
        namespace,
        "--lease-duration",
        str(LEASE_DURATION),
        "--renew-deadline",
        "3",
        "--retry-period",
        "0.5",
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--health-probe-bind-address",
        f"127.0.0.1:{health_port}" if health_port else "0",
    ]
    return cluster.start_process(name, argv, check_alive_for=1.0)


def log_of(record: ProcessRecord) -> str:
    return Path(record.log).read_text(errors="replace")


async def holder(client: AsyncClient, namespace: str) -> str:
    lease: dict[str, Any] = dict(await client.get(RawLease, LEASE, namespace=namespace))
    return str(lease["spec"].get("holderIdentity") or "")


async def test_only_the_leader_reconciles_and_a_survivor_takes_over(
    cluster: LocalCluster, async_client: AsyncClient, namespace: str
) -> None:
    first_name, second_name = f"leader-a-{namespace}", f"leader-b-{namespace}"
    first = start_replica(cluster, first_name, namespace)
    try:

        async def first_leads() -> str:
            assert "became leader" in log_of(first)
            return await holder(async_client, namespace)

        first_identity = await eventually_async(first_leads, timeout=30, retry_on=(ApiError,))
        health_port = free_port()
        second = start_replica(cluster, second_name, namespace, health_port)
        try:
            await apply_service(async_client, monolithic("one", replicas=1), namespace)

            async def reconciled(name: str) -> dict[str, Any]:
                obj = await get_service(async_client, name, namespace)
                assert condition(obj, "Ready").get("status") == "True"
                return obj

            await eventually_async(lambda: reconciled("one"), timeout=60, retry_on=(ApiError,))
            assert "became leader" not in log_of(second), "the follower must not reconcile"
            # ...but it is Ready: otherwise a rolling update of the operator would never finish.
            async with httpx.AsyncClient() as http:
                readyz = await http.get(f"http://127.0.0.1:{health_port}/readyz")
            assert readyz.status_code == 200, readyz.text
            assert await holder(async_client, namespace) == first_identity

            # The leader dies without releasing its lease.
            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await apply_service(async_client, monolithic("two", replicas=1), namespace)

            async def taken_over() -> None:
                assert "became leader" in log_of(second)
                assert await holder(async_client, namespace) not in ("", first_identity)

            await eventually_async(taken_over, timeout=LEASE_DURATION + 20, retry_on=(ApiError,))
            # Within the lease duration plus a few retry periods (and CI slack), not "eventually".
            assert time.monotonic() - killed_at < LEASE_DURATION + 15
            await eventually_async(lambda: reconciled("two"), timeout=60, retry_on=(ApiError,))
        finally:
            cluster.stop_process(second_name)
    finally:
        cluster.stop_process(first_name)


async def test_sigterm_releases_the_lease_for_a_fast_hand_over(
    cluster: LocalCluster, async_client: AsyncClient, namespace: str
) -> None:
    name = f"leader-term-{namespace}"
    record = start_replica(cluster, name, namespace)
    try:

        async def leads() -> str:
            assert "became leader" in log_of(record)
            return await holder(async_client, namespace)

        await eventually_async(leads, timeout=30, retry_on=(ApiError,))
    finally:
        assert cluster.stop_process(name)

    async def released() -> None:
        assert await holder(async_client, namespace) == ""

    # A graceful shutdown gives the lease up at once, instead of making the next replica wait.
    await eventually_async(released, timeout=5)
    assert "shutting down" in log_of(record)
