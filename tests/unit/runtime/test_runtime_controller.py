"""Controller and informer store logic, driven without an apiserver.

The informer's list/watch loop needs a cluster (tests/integration/runtime); here its store is fed
through the same internal entry points the loop uses (`_replace` for a LIST, `_upsert`/`_delete`
for watch events), which is where the event, index and handler semantics live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from lightkube.resources.core_v1 import ConfigMap

from fusioninfer.kube.owners import controller_owner
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.logs import record_context
from fusioninfer.runtime.loop import Controller, ObjectKey, Result, TerminalError
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.ratelimit import ItemExponentialFailureRateLimiter

OWNER_API = "fusioninfer.io/v1alpha1"
OWNER_KIND = "InferenceService"


def cm(
    name: str,
    ns: str = "ns",
    rv: str = "1",
    labels: dict[str, str] | None = None,
    owners: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "resourceVersion": rv, "uid": f"uid-{name}"}
    if labels:
        meta["labels"] = labels
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, **extra}


def owner_ref(name: str, controller: bool = True, api: str = OWNER_API, kind: str = OWNER_KIND) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": controller}


def offline_informer(metrics: RuntimeMetrics, **kw: Any) -> Informer:
    return Informer(cast(Any, None), ConfigMap, metrics=metrics, **kw)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"], obj["metadata"].get("resourceVersion")))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"], new["metadata"].get("resourceVersion")))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", obj["metadata"]["name"], obj["metadata"].get("resourceVersion")))

    def attach(self, inf: Informer) -> Recorder:
        inf.add_event_handler(self.on_add, self.on_update, self.on_delete)
        return self


# -- informer store ----------------------------------------------------------------------------------


async def test_relist_emits_only_differences(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    rec = Recorder().attach(inf)
    await inf._replace([cm("a"), cm("b"), cm("c")])
    assert sorted(rec.events) == [("add", "a", "1"), ("add", "b", "1"), ("add", "c", "1")]
    rec.events.clear()
    # b unchanged, a changed, c vanished (deleted while we were not watching), d new
    await inf._replace([cm("a", rv="5"), cm("b"), cm("d", rv="6")])
    assert sorted(rec.events) == [("add", "d", "6"), ("delete", "c", "1"), ("update", "a", "5")]
    assert sorted(k[1] for k in inf.list_keys()) == ["a", "b", "d"]


async def test_watch_events_update_store_and_call_handlers(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    rec = Recorder().attach(inf)
    await inf._upsert(inf._clean(cm("a")))
    await inf._upsert(inf._clean(cm("a", rv="2", data={"k": "v"})))
    live = inf.get("ns", "a")
    assert live is not None
    assert live["data"] == {"k": "v"}
    await inf._delete(inf._clean(cm("a", rv="3")))
    assert inf.get("ns", "a") is None
    assert rec.events == [("add", "a", "1"), ("update", "a", "2"), ("delete", "a", "3")]


async def test_clean_strips_managed_fields_and_fills_type(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    raw = cm("a")
    raw["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]
    obj = inf._clean(raw)
    assert "managedFields" not in obj["metadata"]
    assert obj["apiVersion"] == "v1"
    assert obj["kind"] == "ConfigMap"


async def test_transform_applies_before_storing(metrics: RuntimeMetrics) -> None:
    def slim(obj: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": obj["metadata"]}

    inf = offline_informer(metrics, transform=slim)
    await inf._upsert(inf._clean(cm("a", data={"big": "x" * 100})))
    assert inf.get("ns", "a") == {"metadata": cm("a")["metadata"]}


async def test_owner_and_label_indexes_follow_changes(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    await inf._replace(
        [
            cm("a", labels={"app": "x", "tier": "web"}, owners=[owner_ref("svc1")]),
            cm("b", labels={"app": "x"}, owners=[owner_ref("svc1"), owner_ref("other", controller=False)]),
            cm("c", ns="ns2", labels={"app": "y"}),
        ]
    )
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.by_owner("uid-svc1")) == ["a", "b"]
    assert names(inf.by_owner("uid-other")) == ["b"]
    assert names(inf.by_label("app", "x")) == ["a", "b"]
    assert names(inf.list(labels={"app": "x", "tier": "web"})) == ["a"]
    assert names(inf.list(namespace="ns2")) == ["c"]
    assert names(inf.list(namespace="ns2", labels={"app": "x"})) == []
    assert names(inf.list()) == ["a", "b", "c"]
    # relabel and re-own b; delete a
    await inf._upsert(cm("b", rv="2", labels={"app": "z"}, owners=[owner_ref("svc2")]))
    await inf._delete(cm("a", rv="3"))
    assert inf.by_owner("uid-svc1") == []
    assert names(inf.by_owner("uid-svc2")) == ["b"]
    assert inf.by_label("app", "x") == []
    assert inf.by_label("tier", "web") == []
    assert names(inf.by_label("app", "z")) == ["b"]
    assert not inf._store._by_owner.get("uid-svc1"), "empty index buckets are dropped"


async def test_late_handler_gets_cache_replayed(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    await inf._replace([cm("a"), cm("b")])
    inf._synced.set()
    rec = Recorder().attach(inf)
    assert sorted(rec.events) == [("add", "a", "1"), ("add", "b", "1")]


async def test_failing_handler_does_not_starve_others(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)

    def broken(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf.add_event_handler(on_add=broken)
    seen: list[str] = []

    async def async_handler(obj: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(obj["metadata"]["name"])

    inf.add_event_handler(on_add=async_handler)
    await inf._upsert(cm("a"))
    assert seen == ["a"]


async def test_resync_redelivers_every_object(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics, resync_period=0.02)
    await inf._replace([cm("a"), cm("b")])
    inf._synced.set()
    rec = Recorder().attach(inf)
    rec.events.clear()
    task = asyncio.create_task(inf._resync_loop())
    await asyncio.sleep(0.05)
    task.cancel()
    updates = [e for e in rec.events if e[0] == "update"]
    assert {e[1] for e in updates} == {"a", "b"}
    assert len(updates) >= 2


# -- owner mapping -----------------------------------------------------------------------------------


def test_controller_owner_matching() -> None:
    assert controller_owner(cm("a", owners=[owner_ref("s")]), OWNER_API, OWNER_KIND) == "s"
    # the version does not matter, the group and kind do
    assert controller_owner(cm("a", owners=[owner_ref("s", api="fusioninfer.io/v1")]), OWNER_API, OWNER_KIND) == "s"
    assert controller_owner(cm("a", owners=[owner_ref("s", api="other.io/v1alpha1")]), OWNER_API, OWNER_KIND) is None
    assert controller_owner(cm("a", owners=[owner_ref("s", kind="Other")]), OWNER_API, OWNER_KIND) is None
    assert controller_owner(cm("a", owners=[owner_ref("s", controller=False)]), OWNER_API, OWNER_KIND) is None
    assert controller_owner(cm("a"), OWNER_API, OWNER_KIND) is None
    assert controller_owner(cm("a", owners=[owner_ref("x", api="apps/v1", kind="ReplicaSet")]), "apps/v1", "ReplicaSet")


async def noop(key: ObjectKey) -> Result:
    return Result()


async def test_watch_primary_and_owned_enqueue_the_right_keys(metrics: RuntimeMetrics) -> None:
    ctrl = Controller("t", noop, metrics=metrics)
    primary = offline_informer(metrics)
    children = offline_informer(metrics)
    ctrl.watch_primary(primary)
    ctrl.watch_owned(children, OWNER_API, OWNER_KIND)

    async def drain() -> set[ObjectKey]:
        keys = set()
        while len(ctrl.queue):
            k = await ctrl.queue.get()
            ctrl.queue.done(k)
            keys.add(k)
        return keys

    await primary._upsert(cm("svc", ns="n1"))
    assert await drain() == {ObjectKey("n1", "svc")}
    await children._upsert(cm("child", ns="n1", owners=[owner_ref("svc")]))
    await children._upsert(cm("orphan", ns="n1"))
    await children._upsert(cm("not-controlled", ns="n1", owners=[owner_ref("svc2", controller=False)]))
    assert await drain() == {ObjectKey("n1", "svc")}
    # moving a child from one owner to another wakes both
    await children._upsert(cm("child", ns="n1", rv="2", owners=[owner_ref("svc3")]))
    assert await drain() == {ObjectKey("n1", "svc"), ObjectKey("n1", "svc3")}
    await children._delete(cm("child", ns="n1", rv="3", owners=[owner_ref("svc3")]))
    assert await drain() == {ObjectKey("n1", "svc3")}
    assert ctrl.informers == [primary, children]


async def test_events_and_the_triggers_among_them_are_counted(metrics: RuntimeMetrics) -> None:
    """What the apiserver streams (every delivered change) and which of those changes cost a
    reconcile (made a key pending) are told apart: that is how a burst's extra reconciles are
    traced to the informer causing them."""
    ctrl = Controller("t", noop, metrics=metrics)
    children = offline_informer(metrics, name="kids")
    ctrl.watch_owned(children, OWNER_API, OWNER_KIND)

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    await children._upsert(cm("a", owners=[owner_ref("svc")]))
    await children._upsert(cm("b", owners=[owner_ref("svc")]))  # svc already pending: merges
    await children._upsert(cm("a", rv="2", owners=[owner_ref("svc")]))
    await children._upsert(cm("orphan"))  # no owner: delivered, never a trigger
    assert sample("fusioninfer_informer_events_total", resource="kids", event="add") == 3
    assert sample("fusioninfer_informer_events_total", resource="kids", event="update") == 1
    assert sample("fusioninfer_controller_triggers_total", controller="t", resource="kids", event="add") == 1
    assert sample("fusioninfer_controller_triggers_total", controller="t", resource="kids", event="update") == 0
    key = await ctrl.queue.get()
    ctrl.queue.done(key)
    await children._delete(cm("b", rv="3", owners=[owner_ref("svc")]))
    assert sample("fusioninfer_controller_triggers_total", controller="t", resource="kids", event="delete") == 1


async def test_an_echo_of_our_own_write_wakes_nothing_but_its_delete_does(metrics: RuntimeMetrics) -> None:
    ctrl = Controller("t", noop, metrics=metrics)
    primary, children = offline_informer(metrics), offline_informer(metrics)
    ours = {("child", "2"), ("svc", "5")}

    held: list[Any] = []

    def is_echo(o: dict[str, Any], replay: Any) -> bool:
        if o["metadata"]["resourceVersion"] == "4":  # a write of it in flight: held back
            held.append(replay)
            return True
        return (o["metadata"]["name"], o["metadata"]["resourceVersion"]) in ours

    ctrl.watch_primary(primary, echo=is_echo)
    ctrl.watch_owned(children, OWNER_API, OWNER_KIND, echo=is_echo)
    await children._upsert(cm("child", rv="2", owners=[owner_ref("svc")]))
    await primary._upsert(cm("svc", rv="5"))
    assert len(ctrl.queue) == 0
    await children._upsert(cm("child", rv="3", owners=[owner_ref("svc")]))  # somebody else's change
    assert len(ctrl.queue) == 1
    key = await ctrl.queue.get()
    ctrl.queue.done(key)
    await children._upsert(cm("child", rv="4", owners=[owner_ref("svc")]))
    assert len(ctrl.queue) == 0
    held.pop()()  # the write returned another version: the held-back event was news
    assert len(ctrl.queue) == 1
    key = await ctrl.queue.get()
    ctrl.queue.done(key)
    await children._delete(cm("child", rv="2", owners=[owner_ref("svc")]))
    assert len(ctrl.queue) == 1, "a delete is always news: the child must be put back"


def test_object_key() -> None:
    assert ObjectKey.of(cm("a", ns="n")) == ObjectKey("n", "a")
    assert str(ObjectKey("n", "a")) == "n/a"
    assert str(ObjectKey("", "cluster-wide")) == "cluster-wide"
    assert ObjectKey("n", "a") == ("n", "a")
    assert len({ObjectKey("n", "a"), ObjectKey("n", "a")}) == 1


# -- reconcile outcomes ------------------------------------------------------------------------------


def total(m: RuntimeMetrics, result: str, controller: str = "t") -> float:
    v = m.registry.get_sample_value("controller_runtime_reconcile_total", {"controller": controller, "result": result})
    return v or 0.0


async def test_reconcile_outcomes(metrics: RuntimeMetrics) -> None:
    outcomes: dict[str, Any] = {}

    async def reconcile(key: ObjectKey) -> Result | None:
        what = outcomes[key.name]
        if isinstance(what, BaseException):
            raise what
        return cast(Result | None, what)

    ctrl = Controller("t", reconcile, metrics=metrics)
    q = ctrl.queue
    outcomes.update(
        ok=Result(),
        none=None,
        boom=RuntimeError("transient"),
        later=Result(requeue_after=30),
        again=Result(requeue=True),
        bad=TerminalError("invalid spec"),
    )
    assert await ctrl.process(ObjectKey("n", "ok")) == "success"
    assert await ctrl.process(ObjectKey("n", "none")) == "success"
    assert await ctrl.process(ObjectKey("n", "boom")) == "error"
    assert q.num_requeues(ObjectKey("n", "boom")) == 1
    assert await ctrl.process(ObjectKey("n", "later")) == "requeue_after"
    assert q.num_requeues(ObjectKey("n", "later")) == 0
    assert await ctrl.process(ObjectKey("n", "again")) == "requeue"
    assert q.num_requeues(ObjectKey("n", "again")) == 1
    assert await ctrl.process(ObjectKey("n", "bad")) == "error"
    assert q.num_requeues(ObjectKey("n", "bad")) == 0, "terminal errors are not retried"
    assert q.waiting_count == 3  # boom, later, again are parked; bad is not
    # success forgets earlier failures
    outcomes["boom"] = Result()
    assert await ctrl.process(ObjectKey("n", "boom")) == "success"
    assert q.num_requeues(ObjectKey("n", "boom")) == 0
    assert total(metrics, "success") == 3
    assert total(metrics, "error") == 2
    assert total(metrics, "requeue") == 1
    assert total(metrics, "requeue_after") == 1
    assert metrics.registry.get_sample_value("controller_runtime_reconcile_errors_total", {"controller": "t"}) == 2
    assert (
        metrics.registry.get_sample_value("controller_runtime_reconcile_time_seconds_count", {"controller": "t"}) == 7
    )
    assert metrics.registry.get_sample_value("controller_runtime_max_concurrent_reconciles", {"controller": "t"}) == 1
    q.shutdown()


async def test_reconcile_logs_carry_context(metrics: RuntimeMetrics, caplog: pytest.LogCaptureFixture) -> None:
    from fusioninfer.runtime.logs import install_record_factory

    install_record_factory()
    app_log = logging.getLogger("fusioninfer.test.reconciler")

    async def reconcile(key: ObjectKey) -> Result:
        app_log.info("reconciling")
        return Result()

    ctrl = Controller("ctx", reconcile, metrics=metrics)
    with caplog.at_level(logging.INFO, logger="fusioninfer.test.reconciler"):
        await ctrl.process(ObjectKey("n", "x"))
    rec = next(r for r in caplog.records if r.getMessage() == "reconciling")
    ctx = record_context(rec)
    assert (ctx["controller"], ctx["namespace"], ctx["name"]) == ("ctx", "n", "x")
    assert len(ctx["reconcileID"]) == 36
    ctrl.queue.shutdown()


# -- running -----------------------------------------------------------------------------------------


async def test_run_reconciles_events_retries_errors_and_stops_gracefully(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    inf._synced.set()
    calls: dict[str, int] = {}
    concurrent = 0
    max_concurrent = 0
    finished: list[str] = []

    async def reconcile(key: ObjectKey) -> Result:
        nonlocal concurrent, max_concurrent
        calls[key.name] = calls.get(key.name, 0) + 1
        concurrent += 1
        max_concurrent = max(max_concurrent, concurrent)
        try:
            await asyncio.sleep(0.01)
            if key.name == "flaky" and calls[key.name] < 3:
                raise RuntimeError("not yet")
            if key.name == "slow":
                await asyncio.sleep(0.1)
            finished.append(key.name)
            return Result()
        finally:
            concurrent -= 1

    ctrl = Controller(
        "run", reconcile, workers=3, metrics=metrics, rate_limiter=ItemExponentialFailureRateLimiter(0.005, 0.05)
    )
    ctrl.watch_primary(inf)
    runner = asyncio.create_task(ctrl.run(start_informers=False))
    for i in range(6):
        await inf._upsert(cm(f"o{i}"))
    await inf._upsert(cm("flaky"))
    for _ in range(200):
        if calls.get("flaky", 0) >= 3 and all(f"o{i}" in finished for i in range(6)):
            break
        await asyncio.sleep(0.01)
    assert ctrl.ready()
    assert calls["flaky"] == 3, "an error is retried with backoff until it succeeds"
    assert all(calls[f"o{i}"] == 1 for i in range(6))
    assert max_concurrent <= 3
    assert max_concurrent >= 2, "workers run concurrently"
    # graceful stop: the in-flight reconcile finishes, queued work is dropped
    await inf._upsert(cm("slow"))
    await asyncio.sleep(0.02)
    await ctrl.stop()
    await asyncio.wait_for(runner, 2)
    assert "slow" in finished
    assert not ctrl.ready()


async def test_run_waits_for_informer_sync(metrics: RuntimeMetrics) -> None:
    inf = offline_informer(metrics)
    called: list[ObjectKey] = []

    async def reconcile(key: ObjectKey) -> Result:
        called.append(key)
        return Result()

    ctrl = Controller("sync", reconcile, metrics=metrics)
    ctrl.watch_primary(inf)
    runner = asyncio.create_task(ctrl.run(start_informers=False))
    await inf._upsert(cm("a"))
    await asyncio.sleep(0.02)
    assert called == [], "no reconcile before the caches are synced"
    assert not ctrl.ready()
    inf._synced.set()
    for _ in range(100):
        if called:
            break
        await asyncio.sleep(0.005)
    assert called == [ObjectKey("ns", "a")]
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


def test_workers_must_be_positive(metrics: RuntimeMetrics) -> None:
    with pytest.raises(ValueError, match="workers"):
        Controller("bad", noop, workers=0, metrics=metrics)


async def test_run_again_after_stop(metrics: RuntimeMetrics) -> None:
    """After a stop (e.g. lost leadership) the same controller can run again and still gets events."""
    inf = offline_informer(metrics)
    inf._synced.set()
    seen: list[str] = []

    async def reconcile(key: ObjectKey) -> Result:
        seen.append(key.name)
        return Result()

    ctrl = Controller("rerun", reconcile, metrics=metrics)
    ctrl.watch_primary(inf)
    for round_ in ("first", "second"):
        runner = asyncio.create_task(ctrl.run(start_informers=False))
        await inf._upsert(cm(round_))
        for _ in range(100):
            if round_ in seen:
                break
            await asyncio.sleep(0.005)
        assert round_ in seen
        await ctrl.stop()
        await asyncio.wait_for(runner, 2)
    runner = asyncio.create_task(ctrl.run(start_informers=False))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        await ctrl.run(start_informers=False)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_informer_survives_unexpected_errors(metrics: RuntimeMetrics) -> None:
    """A bug-like exception in list/watch is logged and retried, never fatal."""
    calls = 0

    class Broken:
        def list(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            raise KeyError("surprise")

    inf = Informer(cast(Any, Broken()), ConfigMap, metrics=metrics, backoff_base=0.001, backoff_max=0.002)
    inf.start()
    for _ in range(200):
        if calls >= 3:
            break
        await asyncio.sleep(0.005)
    assert inf.running, "the informer task must keep going"
    assert calls >= 3
    assert isinstance(inf.last_error, KeyError)
    await inf.stop()
    assert not inf.running
