"""Leader election with real Lease objects: one leader at a time, hand-over on crash (within the
lease duration), fast hand-over on graceful release, and stepping down when the lease is taken."""

from __future__ import annotations

import asyncio
import time

import pytest
from lightkube import AsyncClient
from lightkube.resources.coordination_v1 import Lease
from tests.support.eventually import eventually_async

from fusioninfer.runtime.leader import LeaderElectionConfig, LeaderElector, LeadershipLost
from fusioninfer.runtime.metrics import RuntimeMetrics

pytestmark = pytest.mark.integration

# Short timings so the test is quick; same ratios as client-go's 15/10/2.
LEASE_DURATION = 3.0
RENEW_DEADLINE = 2.0
RETRY_PERIOD = 0.25


class Replica:
    """One elector plus a record of when it led."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        metrics: RuntimeMetrics,
        release_on_cancel: bool = True,
    ) -> None:
        self.name = name
        self.started_at: float | None = None
        self.work_cancelled = False
        self.elector = LeaderElector(
            client,
            LeaderElectionConfig(
                "runtime-it",
                namespace,
                identity=name,
                lease_duration=LEASE_DURATION,
                renew_deadline=RENEW_DEADLINE,
                retry_period=RETRY_PERIOD,
                release_on_cancel=release_on_cancel,
            ),
            metrics=metrics,
        )
        self.task: asyncio.Task[None] | None = None

    async def _work(self) -> None:
        self.started_at = time.monotonic()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.work_cancelled = True
            raise

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.elector.run(self._work))
        return self

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def holder(client: AsyncClient, namespace: str) -> str | None:
    lease = await client.get(Lease, "runtime-it", namespace=namespace)
    return lease.spec.holderIdentity if lease.spec else None


async def only_one_leads(replicas: list[Replica], duration: float) -> None:
    """Sample for `duration` seconds: never two leaders at once."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        leaders = [r.name for r in replicas if r.elector.is_leader]
        assert len(leaders) <= 1, f"two leaders at once: {leaders}"
        await asyncio.sleep(0.05)


async def wait_leader(replicas: list[Replica]) -> Replica:
    async def leaders() -> list[Replica]:
        return [r for r in replicas if r.elector.is_leader]

    found = await eventually_async(leaders, timeout=LEASE_DURATION * 3)
    return found[0]


async def test_one_leader_and_takeover_after_crash(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics
) -> None:
    a = Replica(async_client, namespace, "replica-a", metrics, release_on_cancel=False).start()
    b = Replica(async_client, namespace, "replica-b", metrics, release_on_cancel=False).start()
    try:
        first = await wait_leader([a, b])
        other = b if first is a else a
        await only_one_leads([a, b], 1.5)
        assert await holder(async_client, namespace) == first.name
        assert not other.elector.is_leader
        assert other.started_at is None, "the follower's work must not run"
        assert metrics.registry.get_sample_value("leader_election_master_status", {"name": "runtime-it"}) is not None

        # The leader dies without releasing: the follower takes over once the lease expires.
        crashed_at = time.monotonic()
        await first.cancel()
        assert first.work_cancelled
        assert await holder(async_client, namespace) == first.name, "a crash does not release the lease"
        await eventually_async(lambda: other.elector.is_leader, timeout=LEASE_DURATION + 3)
        assert other.started_at is not None
        takeover = other.started_at - crashed_at
        # Within a lease duration, plus the follower's observation lag and polling interval (each
        # at most one jittered retry period) and some slack for a busy CI machine.
        assert takeover <= LEASE_DURATION + 2 * 1.2 * RETRY_PERIOD + 0.5, f"took {takeover:.2f}s"
        assert takeover >= LEASE_DURATION - RENEW_DEADLINE, f"took over too early: {takeover:.2f}s"
        lease = await async_client.get(Lease, "runtime-it", namespace=namespace)
        assert lease.spec is not None
        assert lease.spec.holderIdentity == other.name
        assert lease.spec.leaseTransitions == 1
    finally:
        for r in (a, b):
            if r.task is not None and not r.task.done():
                await r.cancel()


async def test_graceful_release_hands_over_fast(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics
) -> None:
    a = Replica(async_client, namespace, "replica-a", metrics).start()
    await eventually_async(lambda: a.elector.is_leader, timeout=5)
    b = Replica(async_client, namespace, "replica-b", metrics).start()
    try:
        await only_one_leads([a, b], 0.5)
        released_at = time.monotonic()
        await a.cancel()  # graceful: releases the lease
        lease = await async_client.get(Lease, "runtime-it", namespace=namespace)
        assert lease.spec is not None
        assert lease.spec.holderIdentity in (None, "", "replica-b")
        await eventually_async(lambda: b.elector.is_leader, timeout=LEASE_DURATION)
        assert b.started_at is not None
        # at the follower's next retry, far sooner than the lease duration an expiry would need
        assert b.started_at - released_at < LEASE_DURATION / 2, "a released lease is taken at the next retry"
    finally:
        for r in (a, b):
            if r.task is not None and not r.task.done():
                await r.cancel()


async def test_leader_steps_down_when_the_lease_is_taken(
    async_client: AsyncClient, namespace: str, metrics: RuntimeMetrics
) -> None:
    stopped: list[str] = []
    a = Replica(async_client, namespace, "replica-a", metrics)
    a.elector.on_stopped_leading = lambda: stopped.append("a")
    a.start()
    await eventually_async(lambda: a.elector.is_leader, timeout=5)
    # Someone else overwrites the lease (e.g. an operator whose clock made it think ours expired).
    lease = await async_client.get(Lease, "runtime-it", namespace=namespace)
    assert lease.spec is not None
    lease.spec.holderIdentity = "intruder"
    lease.spec.leaseDurationSeconds = 60
    await async_client.replace(lease)
    assert a.task is not None
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.task, RENEW_DEADLINE + 2)
    assert a.work_cancelled, "the work is cancelled when leadership is lost"
    assert not a.elector.is_leader
    assert stopped == ["a"]
    assert await holder(async_client, namespace) == "intruder", "a replica that lost must not release"
