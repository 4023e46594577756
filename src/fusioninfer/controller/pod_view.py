"""The part of a Pod the operator reads, and which Pod updates are news to it.

The status of an InferenceService takes from its pods only their role, whether each is ready
or being deleted, and why one cannot become ready (`components.pod_is_ready`,
`components.pod_failure`). Everything else in a Pod (the spec, IPs, timestamps, most
conditions) is noise to the operator: caching it costs memory per pod, and an update that
changes only that (the scheduler's ``PodScheduled=False`` on every Pending pod, a kubelet's
timestamps) would wake a reconcile that can find nothing new. `slim_pod` is the informer's
transform; `pod_changed` the filter of its update events. Both must follow what the status code
reads: `tests/unit/controller/test_pod_view.py` checks that every field the status functions
look at survives the slimming.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.kube.types import Obj

_META_KEPT = ("name", "namespace", "uid", "resourceVersion", "labels", "deletionTimestamp")
_STATUS_KEPT = ("phase", "reason", "message")


def _container_states(statuses: Any) -> list[Obj]:
    out: list[Obj] = []
    for cs in statuses or []:
        waiting = ((cs.get("state") or {}).get("waiting")) or {}
        kept = {k: waiting[k] for k in ("reason", "message") if k in waiting}
        out.append({"name": cs.get("name"), "state": {"waiting": kept}} if kept else {"name": cs.get("name")})
    return out


def slim_pod(pod: Obj) -> Obj:
    """`pod` with only what the operator reads: identity, labels, deletion, phase, the Ready
    condition and the waiting reasons of its containers."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    slim_status: Obj = {k: status[k] for k in _STATUS_KEPT if k in status}
    ready = [
        {"type": c.get("type"), "status": c.get("status")}
        for c in status.get("conditions") or []
        if c.get("type") == "Ready"
    ]
    if ready:
        slim_status["conditions"] = ready
    for key in ("initContainerStatuses", "containerStatuses"):
        if status.get(key):
            slim_status[key] = _container_states(status[key])
    return {
        "apiVersion": pod.get("apiVersion", "v1"),
        "kind": pod.get("kind", "Pod"),
        "metadata": {k: meta[k] for k in _META_KEPT if k in meta},
        "status": slim_status,
    }


def pod_changed(old: Obj, new: Obj) -> bool:
    """Whether an update of a (slimmed) pod changed anything the operator reads; a new
    ``resourceVersion`` alone is not news."""

    def without_version(pod: Obj) -> Obj:
        meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "resourceVersion"}
        return {**pod, "metadata": meta}

    return without_version(old) != without_version(new)
