"""Priorities: a created or edited object is reconciled before queued status refreshes.

The queue half (order, promotion, timers, retries) is driven directly and checked against a
reference model with hypothesis; the controller half feeds an offline informer's store the way
its watch loop does and reads the priority each event was queued at.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube.resources.core_v1 import ConfigMap

from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.loop import Controller, ObjectKey, Result
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.priorities import dependent_event_priority, primary_event_priority
from fusioninfer.runtime.workqueue import LOW, NORMAL, WorkQueue

OWNER_API = "fusioninfer.io/v1alpha1"
OWNER_KIND = "InferenceService"


class ZeroLimiter:
    def when(self, item: Any) -> float:
        return 0.0

    def forget(self, item: Any) -> None:
        return None

    def num_requeues(self, item: Any) -> int:
        return 0


async def take(q: WorkQueue[str]) -> str:
    key = await asyncio.wait_for(q.get(), 1)
    q.done(key)
    return key


# -- the queue -----------------------------------------------------------------------------------------


async def test_higher_priority_first_fifo_within(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("prio", metrics=metrics)
    q.add("refresh-1", LOW)
    q.add("refresh-2", LOW)
    q.add("created", NORMAL)
    q.add("edited")  # NORMAL by default
    assert [await take(q) for _ in range(4)] == ["created", "edited", "refresh-1", "refresh-2"]
    assert len(q) == 0


async def test_queued_key_is_promoted_never_demoted_and_counted_once(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("promote", metrics=metrics)
    q.add("a", LOW)
    q.add("b", LOW)
    q.add("a", NORMAL)  # an edit arrives for a key waiting for a refresh
    q.add("c", NORMAL)
    q.add("c", LOW)  # a refresh for a key already waiting at NORMAL
    assert (q.priority_of("a"), q.priority_of("b"), q.priority_of("c")) == (NORMAL, LOW, NORMAL)
    assert len(q) == 3
    assert [await take(q) for _ in range(3)] == ["a", "c", "b"]
    assert len(q) == 0, "the promoted key's old entry must not come back"
    assert q.priority_of("a") is None
    assert metrics.registry.get_sample_value("workqueue_adds_total", {"name": "promote"}) == 3
    assert metrics.registry.get_sample_value("workqueue_depth", {"name": "promote"}) == 0


async def test_key_readded_while_processing_comes_back_at_the_highest_priority(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("readd", metrics=metrics)
    q.add("a", LOW)
    assert await q.get() == "a"
    q.add("a", LOW)
    q.add("a", NORMAL)
    q.add("b", LOW)
    assert len(q) == 1, "a is being processed: only b waits"
    q.done("a")
    assert q.priority_of("a") == NORMAL
    assert [await take(q) for _ in range(2)] == ["a", "b"]


async def test_add_after_keeps_the_earlier_deadline_and_the_higher_priority(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("timer", metrics=metrics)
    q.add_after("a", 0.02, LOW)
    q.add_after("a", 5.0, NORMAL)  # later deadline, higher priority: the priority is kept
    assert q.waiting_count == 1
    await asyncio.sleep(0.1)
    assert q.priority_of("a") == NORMAL, "the timer fired at the earlier deadline with the higher priority"


async def test_rate_limited_retry_keeps_the_priority_it_was_taken_with(metrics: RuntimeMetrics) -> None:
    q: WorkQueue[str] = WorkQueue("retry", metrics=metrics, rate_limiter=ZeroLimiter())
    q.add("refresh", LOW)
    assert await q.get() == "refresh"
    q.add_rate_limited("refresh")
    q.done("refresh")
    await asyncio.sleep(0)
    assert q.priority_of("refresh") == LOW
    q.add("edit", NORMAL)
    assert await q.get() == "edit"
    q.add_rate_limited("edit")
    q.done("edit")
    assert q.priority_of("edit") == NORMAL


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcde"), st.sampled_from([LOW, NORMAL, 5])),
        st.tuples(st.just("take"), st.just(""), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_queue_matches_a_reference_model(ops: list[tuple[str, str, int]]) -> None:
    """Whatever the adds, a take returns the key with the highest priority, the earliest added
    (or promoted) among equals; nothing is lost or duplicated."""

    async def run() -> None:
        q: WorkQueue[str] = WorkQueue("model", metrics=RuntimeMetrics())
        model: dict[str, tuple[int, int]] = {}  # key -> (priority, order)
        for order, (op, key, priority) in enumerate(ops):
            if op == "add":
                current = model.get(key)
                if current is None or priority > current[0]:
                    model[key] = (priority, order)
                q.add(key, priority)
            elif model:
                expected = min(model, key=lambda k: (-model[k][0], model[k][1]))
                assert await take(q) == expected
                del model[expected]
            assert len(q) == len(model)
            assert {k: q.priority_of(k) for k in "abcde"} == {k: model.get(k, (None,))[0] for k in "abcde"}

    asyncio.run(run())


# -- which events are NORMAL ------------------------------------------------------------------------


def obj(generation: int = 1, rv: str = "1", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "svc", "namespace": "ns", "generation": generation, "resourceVersion": rv, **meta}}


def test_primary_event_priority() -> None:
    base = obj()
    assert primary_event_priority("add", None, base) == NORMAL
    assert primary_event_priority("delete", None, base) == NORMAL
    assert primary_event_priority("update", base, obj(generation=2, rv="2")) == NORMAL, "spec edit"
    assert primary_event_priority("update", base, obj(rv="2", labels={"a": "b"})) == NORMAL, "relabelled"
    assert primary_event_priority("update", base, obj(rv="2", annotations={"a": "b"})) == NORMAL
    assert primary_event_priority("update", base, obj(rv="2", deletionTimestamp="2026-01-01T00:00:00Z")) == NORMAL
    status_echo = {**obj(rv="2"), "status": {"observedGeneration": 1}}
    assert primary_event_priority("update", base, status_echo) == LOW, "our own status write"
    assert primary_event_priority("update", base, base) == LOW, "a resync"


def test_dependent_event_priority() -> None:
    child = obj()
    assert dependent_event_priority("add", None, child) == LOW
    assert dependent_event_priority("update", child, obj(generation=2, rv="2")) == LOW
    assert dependent_event_priority("delete", None, child) == NORMAL, "a deleted child must be put back"


def cm(name: str, rv: str = "1", generation: int = 1, owner: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": rv, "generation": generation}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": OWNER_API, "kind": OWNER_KIND, "name": owner, "controller": True}]
    return {"metadata": meta, **extra}


async def noop(key: ObjectKey) -> Result:
    return Result()


async def test_controller_queues_edits_before_refreshes(metrics: RuntimeMetrics) -> None:
    ctrl = Controller("t", noop, metrics=metrics)
    services = Informer(cast(Any, None), ConfigMap, metrics=metrics)
    children = Informer(cast(Any, None), ConfigMap, metrics=metrics)
    ctrl.watch_primary(services)
    ctrl.watch_owned(children, OWNER_API, OWNER_KIND)
    q = ctrl.queue

    # The initial LIST (the informer not yet synced) is LOW, as after a restart.
    await services._replace([cm("old")])
    assert q.priority_of(ObjectKey("ns", "old")) == LOW
    services._synced.set()
    children._synced.set()

    await services._upsert(cm("old", rv="2", status={"observedGeneration": 1}))  # a status echo
    await children._upsert(cm("old-child", owner="old"))  # a child appearing
    await services._upsert(cm("new"))  # a service just created
    assert q.priority_of(ObjectKey("ns", "old")) == LOW
    assert q.priority_of(ObjectKey("ns", "new")) == NORMAL
    await services._upsert(cm("old", rv="3", generation=2))  # now somebody edits it
    assert q.priority_of(ObjectKey("ns", "old")) == NORMAL
    assert await take(cast(WorkQueue[str], q)) == ObjectKey("ns", "new")

    await children._delete(cm("old-child", rv="4", owner="old"))
    assert [await take(cast(WorkQueue[str], q)) for _ in range(len(q))] == [ObjectKey("ns", "old")]
    await children._delete(cm("gone-child", rv="5", owner="lonely"))
    assert q.priority_of(ObjectKey("ns", "lonely")) == NORMAL
