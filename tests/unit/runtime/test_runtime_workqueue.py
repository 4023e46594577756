"""Work queue: client-go semantics (dedup, re-add while processing, delays, backoff, shutdown)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)
from fusioninfer.runtime.workqueue import ShutDownError, WorkQueue


class FixedLimiter:
    """A rate limiter that always answers `delay` and counts calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: dict[Any, int] = {}

    def when(self, item: Any) -> float:
        self.calls[item] = self.calls.get(item, 0) + 1
        return self.delay

    def forget(self, item: Any) -> None:
        self.calls.pop(item, None)

    def num_requeues(self, item: Any) -> int:
        return self.calls.get(item, 0)


def sample(m: RuntimeMetrics, metric: str, **labels: str) -> float:
    value = m.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


async def settle() -> None:
    """Let every ready callback run (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


# -- de-duplication and processing -------------------------------------------------------------------


async def test_key_added_twice_is_processed_once(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("dedup", metrics=metrics)
    assert q.add("a") is True
    assert q.add("b") is True
    assert q.add("a") is False, "already pending: merged, not a new key"
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")
    q.done("b")
    assert len(q) == 0
    assert sample(metrics, "workqueue_adds_total", name="dedup") == 2


async def test_fifo_order(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[int] = WorkQueue("fifo", metrics=metrics)
    for i in range(10):
        q.add(i)
    got = [await q.get() for _ in range(10)]
    assert got == list(range(10))


async def test_readd_while_processing_runs_again_after_done(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("readd", metrics=metrics)
    q.add("a")
    key = await q.get()
    assert key == "a"
    assert q.processing == frozenset({"a"})
    assert q.add("a") is True, "changed while being processed: pending again"
    assert q.add("a") is False, "twice: still only one more run"
    assert len(q) == 0, "must not be handed to a second worker while processing"
    second = asyncio.create_task(q.get())
    await settle()
    assert not second.done(), "a second worker must not get a key that is being processed"
    q.done("a")
    assert await asyncio.wait_for(second, 1) == "a"
    q.done("a")
    assert len(q) == 0
    assert not q.processing


async def test_done_without_readd_does_not_requeue(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("noreadd", metrics=metrics)
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0


async def test_never_two_workers_on_one_key(metrics: RuntimeMetrics) -> None:
    """Many workers, keys re-added at random while in flight: no key is ever processed twice at once,
    and every add is eventually followed by a processing that started after it."""
    q: WorkQueue[int] = WorkQueue("concurrency", metrics=metrics)
    in_flight: set[int] = set()
    overlaps: list[int] = []
    last_add: dict[int, float] = {}
    last_start: dict[int, float] = {}
    rng = random.Random(7)

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except ShutDownError:
                return
            if key in in_flight:
                overlaps.append(key)
            in_flight.add(key)
            last_start[key] = time.monotonic()
            await asyncio.sleep(rng.random() * 0.002)
            in_flight.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(400):
        key = rng.randrange(10)
        last_add[key] = time.monotonic()
        q.add(key)
        if rng.random() < 0.3:
            await asyncio.sleep(0)
    # wait until idle
    for _ in range(500):
        if not len(q) and not q.processing:
            break
        await asyncio.sleep(0.002)
    await q.shutdown_with_drain()
    await asyncio.gather(*workers)
    assert overlaps == []
    for key, added in last_add.items():
        assert last_start[key] >= added, f"key {key}: last add was never processed"


async def test_cancelled_getter_does_not_strand_a_key(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("cancel", metrics=metrics)
    g1 = asyncio.create_task(q.get())
    g2 = asyncio.create_task(q.get())
    await settle()
    q.add("a")  # wakes g1 ...
    g1.cancel()  # ... which is cancelled before it runs
    assert await asyncio.wait_for(g2, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await g1


# -- delays ------------------------------------------------------------------------------------------


async def test_add_after_delays_the_key(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("after", metrics=metrics)
    t0 = time.monotonic()
    q.add_after("a", 0.05)
    assert len(q) == 0
    assert q.waiting_count == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    elapsed = time.monotonic() - t0
    assert 0.045 <= elapsed < 0.5


async def test_add_after_nonpositive_is_immediate(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("after0", metrics=metrics)
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert len(q) == 2


async def test_add_after_keeps_the_earlier_deadline(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("earlier", metrics=metrics)
    t0 = time.monotonic()
    q.add_after("a", 5.0)
    q.add_after("a", 0.03)  # earlier: replaces
    q.add_after("a", 10.0)  # later: ignored
    assert q.waiting_count == 1
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert time.monotonic() - t0 < 1.0
    q.done("a")
    await asyncio.sleep(0.05)
    assert len(q) == 0, "the replaced timers must not fire"
    assert q.waiting_count == 0


async def test_delayed_key_dedups_with_queued_key(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("delay-dedup", metrics=metrics)
    q.add("a")
    q.add_after("a", 0.01)
    await asyncio.sleep(0.03)
    assert len(q) == 1
    assert await q.get() == "a"


# -- rate limiting -----------------------------------------------------------------------------------


def test_exponential_backoff_grows_and_caps() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.005, 1.0)
    delays = [rl.when("a") for _ in range(12)]
    assert delays[:5] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08])
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == 1.0
    assert max(delays) == 1.0
    assert rl.num_requeues("a") == 12
    assert rl.when("b") == pytest.approx(0.005), "backoff is per key"
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == pytest.approx(0.005)


def test_exponential_backoff_survives_huge_failure_counts() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.005, 300.0)
    for _ in range(2000):
        delay = rl.when("a")
    assert delay == 300.0


def test_default_limiter_caps_at_five_minutes() -> None:
    rl = default_controller_rate_limiter()
    delays = [rl.when("a") for _ in range(40)]
    assert delays[0] == pytest.approx(0.005)
    assert max(delays) == pytest.approx(300.0)


def test_token_bucket_burst_then_qps(clock: Any) -> None:
    rl: BucketRateLimiter[str] = BucketRateLimiter(qps=10, burst=3, clock=clock)
    assert [rl.when(str(i)) for i in range(3)] == [0, 0, 0]
    # bucket empty: each further reservation waits one more 1/qps slot
    assert rl.when("x") == pytest.approx(0.1)
    assert rl.when("y") == pytest.approx(0.2)
    clock.advance(10)  # refills, but never above burst
    assert [rl.when(str(i)) for i in range(3)] == [0, 0, 0]
    assert rl.when("z") == pytest.approx(0.1)
    assert rl.num_requeues("z") == 0


def test_token_bucket_refills_at_qps(clock: Any) -> None:
    rl: BucketRateLimiter[str] = BucketRateLimiter(qps=10, burst=1, clock=clock)
    assert rl.when("a") == 0
    clock.advance(0.05)  # half a token
    assert rl.when("a") == pytest.approx(0.05)


def test_max_of_takes_the_longest_wait(clock: Any) -> None:
    rl: MaxOfRateLimiter[str] = MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(0.005, 10.0), BucketRateLimiter(qps=1, burst=2, clock=clock)
    )
    assert rl.when("a") == pytest.approx(0.005)  # bucket has tokens: per-item backoff wins
    assert rl.when("a") == pytest.approx(0.01)
    assert rl.when("b") == pytest.approx(1.0)  # bucket empty: 1 s wait beats 5 ms
    assert rl.num_requeues("a") == 2
    rl.forget("a")
    assert rl.num_requeues("a") == 0


async def test_add_rate_limited_uses_limiter_and_counts_retries(metrics: RuntimeMetrics) -> None:
    limiter = FixedLimiter(0.03)
    q: WorkQueue[str] = WorkQueue("rl", rate_limiter=limiter, metrics=metrics)
    t0 = time.monotonic()
    q.add_rate_limited("a")
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert time.monotonic() - t0 >= 0.025
    assert q.num_requeues("a") == 1
    q.forget("a")
    assert q.num_requeues("a") == 0
    assert sample(metrics, "workqueue_retries_total", name="rl") == 1


async def test_rate_limited_retries_back_off_exponentially(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("rl-exp", rate_limiter=ItemExponentialFailureRateLimiter(0.01, 1.0), metrics=metrics)
    gaps = []
    q.add("a")
    last = time.monotonic()
    for _ in range(4):
        key = await asyncio.wait_for(q.get(), 2)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        q.add_rate_limited(key)
        q.done(key)
    # 0 (first add), then 10 ms, 20 ms, 40 ms
    assert gaps[1] >= 0.009
    assert gaps[2] >= 0.019
    assert gaps[3] >= 0.039
    assert q.num_requeues("a") == 4


# -- shutdown ----------------------------------------------------------------------------------------


async def test_shutdown_wakes_getters_and_rejects_adds(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("shutdown", metrics=metrics)
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await settle()
    q.shutdown()
    for g in getters:
        with pytest.raises(ShutDownError):
            await asyncio.wait_for(g, 1)
    q.add("a")
    q.add_after("b", 0)
    q.add_rate_limited("c")
    assert len(q) == 0
    with pytest.raises(ShutDownError):
        await q.get()


async def test_shutdown_hands_out_pending_then_stops(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("drain-pending", metrics=metrics)
    q.add("a")
    q.add("b")
    q.shutdown()
    assert await q.get() == "a"
    assert await q.get() == "b"
    with pytest.raises(ShutDownError):
        await q.get()


async def test_shutdown_discard_pending_drops_queue(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("discard", metrics=metrics)
    q.add("a")
    q.add("b")
    q.shutdown(discard_pending=True)
    assert len(q) == 0
    with pytest.raises(ShutDownError):
        await q.get()
    assert sample(metrics, "workqueue_depth", name="discard") == 0


async def test_shutdown_cancels_delayed_adds(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("cancel-delayed", metrics=metrics)
    q.add_after("a", 0.01)
    q.shutdown()
    assert q.waiting_count == 0
    await asyncio.sleep(0.03)
    assert len(q) == 0


async def test_shutdown_with_drain_waits_for_in_flight(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("drain", metrics=metrics)
    q.add("a")
    key = await q.get()
    drained = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0.01)
    assert not drained.done(), "must wait for the key being processed"
    q.done(key)
    await asyncio.wait_for(drained, 1)
    assert len(q) == 0


async def test_readd_during_shutdown_discard_is_not_requeued(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("discard-readd", metrics=metrics)
    q.add("a")
    key = await q.get()
    q.add("a")
    q.shutdown(discard_pending=True)
    q.done(key)
    assert len(q) == 0


# -- metrics -----------------------------------------------------------------------------------------


async def test_queue_metrics(metrics: RuntimeMetrics, clock: Any) -> None:
    q: WorkQueue[str] = WorkQueue("m", metrics=metrics, clock=clock)
    q.add("a")
    q.add("b")
    assert sample(metrics, "workqueue_depth", name="m") == 2
    assert sample(metrics, "workqueue_adds_total", name="m") == 2
    clock.advance(2.0)
    await q.get()
    assert sample(metrics, "workqueue_depth", name="m") == 1
    assert sample(metrics, "workqueue_queue_duration_seconds_count", name="m") == 1
    assert sample(metrics, "workqueue_queue_duration_seconds_sum", name="m") == pytest.approx(2.0)
    clock.advance(3.0)
    await q.get()
    clock.advance(1.0)
    # a has run 4 s, b 1 s
    assert sample(metrics, "workqueue_unfinished_work_seconds", name="m") == pytest.approx(5.0)
    assert sample(metrics, "workqueue_longest_running_processor_seconds", name="m") == pytest.approx(4.0)
    q.done("a")
    q.done("b")
    assert sample(metrics, "workqueue_work_duration_seconds_count", name="m") == 2
    assert sample(metrics, "workqueue_work_duration_seconds_sum", name="m") == pytest.approx(5.0)
    assert sample(metrics, "workqueue_unfinished_work_seconds", name="m") == 0
    assert sample(metrics, "workqueue_longest_running_processor_seconds", name="m") == 0
