"""Under load, Normal Events wait for the work queue to drain; Warnings never wait.

The reconciler sends Events in the background. A Normal Event ("Created Deployment x") says
what the status already shows, so while other services wait for a worker it is held back and
the apiserver serves their children and statuses first; a Warning (an apply failed) is news
and goes at once. A held-back Event still goes out after at most NORMAL_EVENT_MAX_DELAY.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fusioninfer.controller import reconciler as reconciler_module
from fusioninfer.controller.reconciler import InferenceServiceReconciler
from fusioninfer.runtime.workqueue import WorkQueue


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def emit(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.sent.append((type_, reason))


def reconciler(recorder: Recorder) -> InferenceServiceReconciler:
    return InferenceServiceReconciler(client=None, caches=None, capabilities=lambda: None, events=recorder)  # type: ignore[arg-type]


SERVICE = {"apiVersion": "fusioninfer.io/v1alpha1", "kind": "InferenceService", "metadata": {"name": "svc"}}


async def test_normal_events_wait_while_the_queue_is_busy_and_warnings_do_not() -> None:
    recorder = Recorder()
    rec = reconciler(recorder)
    queue: WorkQueue[str] = WorkQueue("events-test")
    queue.add("another-service")
    rec.queue_empty = queue.wait_empty
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    rec._emit_soon(SERVICE, "Warning", "ApplyFailed", "applying Deployment svc-inference: 422")
    await asyncio.sleep(0.3)
    assert recorder.sent == [("Warning", "ApplyFailed")], "the Normal Event waits, the Warning does not"
    assert await queue.get() == "another-service"  # a worker takes the last waiting key
    await asyncio.wait_for(rec.flush_events(), 2)
    assert recorder.sent == [("Warning", "ApplyFailed"), ("Normal", "Created")]


async def test_a_held_back_event_goes_out_after_the_longest_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconciler_module, "NORMAL_EVENT_MAX_DELAY", 0.2)
    recorder = Recorder()
    rec = reconciler(recorder)
    never: asyncio.Event = asyncio.Event()
    rec.queue_empty = never.wait  # a queue that never drains
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    await asyncio.wait_for(rec.flush_events(), 2)
    assert recorder.sent == [("Normal", "Created")]


async def test_an_idle_operator_sends_at_once() -> None:
    recorder = Recorder()
    rec = reconciler(recorder)
    rec._emit_soon(SERVICE, "Normal", "Created", "Created Deployment svc-inference")
    await asyncio.wait_for(rec.flush_events(), 0.5)
    assert recorder.sent == [("Normal", "Created")]


async def test_the_queue_is_empty_when_no_key_waits_for_a_worker() -> None:
    """Keys being processed or delayed do not count: only those a worker could take now."""
    queue: WorkQueue[str] = WorkQueue("empty-test")
    await asyncio.wait_for(queue.wait_empty(), 0.1)
    queue.add("a")
    queue.add("b")
    waiter = asyncio.ensure_future(queue.wait_empty())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert await queue.get() == "a"
    await asyncio.sleep(0.05)
    assert not waiter.done(), "b still waits"
    assert await queue.get() == "b"
    await asyncio.wait_for(waiter, 0.5)
    queue.add("a")  # re-added while processing: queued again by done()
    queue.done("a")
    waiter = asyncio.ensure_future(queue.wait_empty())
    await asyncio.sleep(0.05)
    assert not waiter.done(), "a was queued again when its processing finished"
    queue.shutdown(discard_pending=True)
    await asyncio.wait_for(waiter, 0.5)
