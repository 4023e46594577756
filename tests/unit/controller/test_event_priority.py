"""Under load, Normal Events wait for a lull in the work queue; Warnings never wait.

The reconciler sends Events in the background. A Normal Event ("Created Deployment x") says
what the status already shows, so while the operator is busy it is held back and the apiserver
serves children and statuses first; a Warning (an apply failed) is news and goes at once. A
held-back Event still goes out after at most `max_delay`, and the same Event held twice is sent
once, with a count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fusioninfer.controller.events import HeldEvents
from fusioninfer.controller.reconciler import InferenceServiceReconciler
from fusioninfer.runtime.workqueue import WorkQueue


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.counts: list[int] = []
        self.firsts: list[str | None] = []

    async def emit(
        self,
        involved: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        first: str | None = None,
        count: int = 1,
    ) -> None:
        self.sent.append((type_, reason))
        self.counts.append(count)
        self.firsts.append(first)


def reconciler(recorder: Recorder) -> InferenceServiceReconciler:
    return InferenceServiceReconciler(client=None, caches=None, capabilities=lambda: None, events=recorder)  # type: ignore[arg-type]


def held(recorder: Recorder, max_delay: float = 60.0) -> HeldEvents:
    return HeldEvents(recorder, max_delay=max_delay, concurrency=2)  # type: ignore[arg-type]


KIND = {"apiVersion": "fusioninfer.io/v1alpha1", "kind": "InferenceService"}
SERVICE = {**KIND, "metadata": {"name": "svc", "uid": "u1"}}
OTHER = {**KIND, "metadata": {"name": "two", "uid": "u2"}}


async def test_normal_events_wait_while_a_key_is_processed_and_warnings_do_not() -> None:
    recorder = Recorder()
    rec = reconciler(recorder)
    queue: WorkQueue[str] = WorkQueue("events-test")
    rec.held.lull = lambda: queue.wait_idle(0.1)
    queue.add("another-service")
    assert await queue.get() == "another-service"  # the queue is empty, but a worker is busy
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    rec._emit_soon(SERVICE, "Warning", "ApplyFailed", "applying Deployment svc-inference: 422")
    await asyncio.sleep(0.3)
    assert recorder.sent == [("Warning", "ApplyFailed")], "the Normal Event waits, the Warning does not"
    queue.done("another-service")
    await asyncio.sleep(0.05)
    assert recorder.sent == [("Warning", "ApplyFailed")], "idle for less than the settle time"
    await asyncio.sleep(0.2)
    assert recorder.sent == [("Warning", "ApplyFailed"), ("Normal", "Created")]


async def test_a_held_back_event_goes_out_after_the_longest_delay() -> None:
    recorder = Recorder()
    events = held(recorder, max_delay=0.2)
    never = asyncio.Event()
    events.lull = never.wait  # an operator that is never idle
    events.hold(SERVICE, "Created", "Created Deployment svc-inference")
    await asyncio.sleep(0.1)
    assert recorder.sent == []
    await asyncio.sleep(0.3)
    assert recorder.sent == [("Normal", "Created")]


async def test_an_idle_operator_sends_at_once() -> None:
    recorder = Recorder()
    rec = reconciler(recorder)  # no work queue attached: always idle
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    await asyncio.sleep(0.05)
    assert recorder.sent == [("Normal", "Created")]


async def test_the_same_event_held_twice_is_sent_once_with_a_count() -> None:
    recorder = Recorder()
    events = held(recorder)
    gate = asyncio.Event()
    events.lull = gate.wait
    for _ in range(3):
        events.hold(SERVICE, "Updated", "Updated Deployment svc-inference")
    events.hold(OTHER, "Updated", "Updated Deployment svc-inference")  # another service: its own Event
    events.hold(SERVICE, "Created", "Created Deployment svc-inference")  # another reason: its own Event
    assert len(events) == 3
    gate.set()
    await asyncio.sleep(0.05)
    assert sorted(zip(recorder.sent, recorder.counts, strict=True)) == [
        (("Normal", "Created"), 1),
        (("Normal", "Updated"), 1),
        (("Normal", "Updated"), 3),
    ]
    assert all(recorder.firsts), "a held Event says when it first happened"
    assert len(events) == 0


async def test_flush_sends_what_is_held_without_waiting_for_a_lull() -> None:
    recorder = Recorder()
    rec = reconciler(recorder)
    never = asyncio.Event()
    rec.held.lull = never.wait
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    rec._emit_soon(SERVICE, "Warning", "ApplyFailed", "applying Deployment svc-inference: 422")
    await asyncio.wait_for(rec.flush_events(), 1)
    assert sorted(recorder.sent) == [("Normal", "Created"), ("Warning", "ApplyFailed")]
    rec._emit_soon(OTHER, "Normal", "Created", "Created Deployment two-inference")
    await asyncio.sleep(0.1)
    assert len(recorder.sent) == 2, "after a flush, Events wait for a lull again"


async def test_the_queue_is_idle_only_after_settling_with_nothing_waiting_or_processed() -> None:
    """Keys waiting or being processed count as work; delayed keys do not. A key that comes and
    goes within the settle time restarts it."""
    queue: WorkQueue[str] = WorkQueue("idle-test")
    await asyncio.wait_for(queue.wait_idle(0.05), 0.5)
    queue.add("a")
    waiter = asyncio.ensure_future(queue.wait_idle(0.1))
    await asyncio.sleep(0.05)
    assert not waiter.done(), "a waits for a worker"
    assert await queue.get() == "a"
    await asyncio.sleep(0.05)
    assert not waiter.done(), "a is being processed"
    queue.done("a")
    await asyncio.sleep(0.05)
    queue.add("b")  # within the settle time: not a lull yet
    assert await queue.get() == "b"
    queue.done("b")
    await asyncio.sleep(0.07)
    assert not waiter.done(), "settling restarted when b came"
    await asyncio.wait_for(waiter, 0.5)
    queue.add("d")
    queue.add("e")
    assert {await queue.get(), await queue.get()} == {"d", "e"}
    queue.done("d")  # two workers: one finishes, the other still works
    waiter = asyncio.ensure_future(queue.wait_idle(0.05))
    await asyncio.sleep(0.1)
    assert not waiter.done(), "e is still being processed"
    queue.done("e")
    await asyncio.wait_for(waiter, 0.5)
    queue.add_after("later", 10.0)
    await asyncio.wait_for(queue.wait_idle(0.05), 0.5)
    queue.add("c")
    queue.shutdown(discard_pending=True)
    await asyncio.wait_for(queue.wait_idle(0.01), 0.5)
