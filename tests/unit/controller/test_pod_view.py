"""The operator caches slimmed pods and ignores pod updates that change nothing it reads: the
status must come out the same as from the full pods, and a status-relevant change must still
wake the service."""

from __future__ import annotations

from typing import Any, cast

import hypothesis.strategies as st
from hypothesis import given
from lightkube.resources.core_v1 import Pod
from prometheus_client import CollectorRegistry

from fusioninfer.api.labels import LABEL_ROLE_NAME, LABEL_SERVICE
from fusioninfer.controller.components import FAILING_WAIT_REASONS, pod_failure, pod_is_ready
from fusioninfer.controller.operator import _service_of
from fusioninfer.controller.pod_view import pod_changed, slim_pod
from fusioninfer.runtime.informer import Informer
from fusioninfer.runtime.loop import Controller, ObjectKey, Result
from fusioninfer.runtime.metrics import RuntimeMetrics

WAITING = st.sampled_from([*sorted(FAILING_WAIT_REASONS), "ContainerCreating", "PodInitializing"])
CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["vllm", "init", "sidecar"])},
    optional={
        "state": st.one_of(
            st.fixed_dictionaries(
                {"waiting": st.fixed_dictionaries({"reason": WAITING}, optional={"message": st.text(max_size=8)})}
            ),
            st.just({"running": {"startedAt": "2026-12-03T00:00:00Z"}}),
        ),
        "restartCount": st.integers(0, 5),
        "image": st.just("vllm/vllm-openai:v0.11.0"),
    },
)
CONDITION = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Ready", "PodScheduled", "ContainersReady", "Initialized"]),
        "status": st.sampled_from(["True", "False", "Unknown"]),
    },
    optional={"reason": st.just("Unschedulable"), "lastTransitionTime": st.just("2026-12-03T00:00:00Z")},
)
POD = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("svc-0"), "namespace": st.just("ns"), "resourceVersion": st.just("7")},
            optional={
                "labels": st.just({LABEL_SERVICE: "svc", LABEL_ROLE_NAME: "inference"}),
                "deletionTimestamp": st.just("2026-12-03T00:00:00Z"),
                "ownerReferences": st.just([{"kind": "ReplicaSet", "name": "svc-abc"}]),
            },
        ),
        "spec": st.just({"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}),
        "status": st.fixed_dictionaries(
            {"phase": st.sampled_from(["Pending", "Running", "Running", "Failed"])},
            optional={
                "reason": st.sampled_from(["Evicted", "OOMKilled"]),
                "message": st.text(max_size=8),
                "conditions": st.lists(CONDITION, max_size=4),
                "containerStatuses": st.lists(CONTAINER, max_size=3),
                "initContainerStatuses": st.lists(CONTAINER, max_size=2),
                "podIP": st.just("10.0.0.7"),
            },
        ),
    }
)


@given(POD)
def test_the_status_reads_the_same_from_a_slimmed_pod(pod: dict[str, Any]) -> None:
    slim = slim_pod(pod)
    assert pod_is_ready(slim) == pod_is_ready(pod)
    assert pod_failure(slim) == pod_failure(pod)
    assert slim["metadata"].get("labels") == pod["metadata"].get("labels"), "the role and the cache's index"
    assert list(_service_of(slim)) == list(_service_of(pod))
    assert not pod_changed(slim_pod(pod), slim), "slimming is deterministic"


@given(POD, POD)
def test_an_update_is_news_exactly_when_something_the_status_reads_moved(a: dict[str, Any], b: dict[str, Any]) -> None:
    if pod_is_ready(a) != pod_is_ready(b) or pod_failure(a) != pod_failure(b):
        assert pod_changed(slim_pod(a), slim_pod(b))


READY = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-03T00:00:00Z"}


def pending(**status: Any) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "ns", "resourceVersion": "1", "labels": {LABEL_SERVICE: "svc"}}
    return {"metadata": meta, "status": {"phase": "Pending", **status}}


def test_the_schedulers_unschedulable_write_and_a_new_resource_version_are_not_news() -> None:
    created = slim_pod(pending())
    unschedulable = pending(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    unschedulable["metadata"]["resourceVersion"] = "2"
    assert not pod_changed(created, slim_pod(unschedulable))
    ready = pending(phase="Running", conditions=[{"type": "PodScheduled", "status": "True"}, READY])
    assert pod_is_ready(slim_pod(ready))
    assert pod_changed(created, slim_pod(ready))
    crashing = pending(containerStatuses=[{"name": "vllm", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    assert pod_failure(slim_pod(crashing)) == pod_failure(crashing) is not None
    relabelled = pending()
    relabelled["metadata"]["labels"] = {LABEL_SERVICE: "other"}
    assert pod_changed(created, slim_pod(relabelled))


async def noop(key: ObjectKey) -> Result:
    return Result()


async def test_a_pod_update_that_is_no_news_wakes_no_reconcile() -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    ctrl = Controller("t", noop, metrics=metrics)
    pods = Informer(cast(Any, None), Pod, metrics=metrics, transform=slim_pod)
    ctrl.watch_mapped(pods, _service_of, changed=pod_changed)
    pods._synced.set()
    q = ctrl.queue
    svc = ObjectKey("ns", "svc")

    await pods._upsert(pods._clean(pending()))  # as the watch delivers it
    assert q.priority_of(svc) is not None, "a new pod counts"
    key = await q.get()
    q.done(key)
    unschedulable = pending(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])
    await pods._upsert(
        pods._clean({**unschedulable, "metadata": {**unschedulable["metadata"], "resourceVersion": "2"}})
    )
    assert len(q) == 0, "the scheduler's write changes nothing the status reads"
    assert "conditions" not in pods.list()[0]["status"], "the cache holds the slimmed pod"
    await pods._upsert(pods._clean(pending(phase="Running", conditions=[{"type": "Ready", "status": "True"}])))
    assert q.priority_of(svc) is not None, "a pod becoming ready does"
