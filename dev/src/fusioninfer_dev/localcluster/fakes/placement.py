"""Where Pods fit: the Nodes' allocatable minus what bound Pods request, and a first-fit
placement by requests, node selectors, taints and readiness, as the kube-scheduler's filters
see it. Pure, unit-tested; the fake Volcano (volcano.py) places a gang with it, all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fusioninfer.builders.resources import pod_requests
from fusioninfer.kube.quantity import NANO, InvalidQuantity, Quantity
from fusioninfer_dev.localcluster.kube_loop import meta

Resources = dict[str, int]  # resource name -> nano-units


def quantity_nanos(value: Any) -> int:
    try:
        return Quantity.parse(value).nanos
    except (InvalidQuantity, TypeError):
        return 0


def pod_request(pod: Mapping[str, Any]) -> Resources:
    """What binding `pod` takes from a Node: its effective requests plus one `pods` slot."""
    req = {name: q.nanos for name, q in pod_requests(pod.get("spec") or {}).items() if q.nanos}
    req["pods"] = req.get("pods", 0) + NANO
    return req


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return {str(k): quantity_nanos(v) for k, v in alloc.items()}


def is_bound(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def holds_resources(pod: Mapping[str, Any]) -> bool:
    """A bound Pod counts against its Node until it has terminated (as in the kube-scheduler)."""
    return is_bound(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def node_ready(node: Mapping[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol.get("key") == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def node_admits(node: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Everything but resources: Ready, not cordoned, taints tolerated, nodeSelector matched."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable") or not node_ready(node):
        return False
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, taint):
            return False
    labels = meta(node).get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def fits(request: Mapping[str, int], free: Mapping[str, int]) -> bool:
    return all(free.get(name, 0) >= amount for name, amount in request.items() if amount > 0)


def subtract(free: Mapping[str, int], request: Mapping[str, int]) -> Resources:
    out = dict(free)
    for name, amount in request.items():
        out[name] = out.get(name, 0) - amount
    return out


def free_by_node(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> dict[str, Resources]:
    """Allocatable minus what every bound, not terminated Pod requests, per Node."""
    free = {str(meta(n)["name"]): node_allocatable(n) for n in nodes}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in free and holds_resources(pod):
            free[node] = subtract(free[node], pod_request(pod))
    return free


def _shortfall(request: Mapping[str, int], free: Mapping[str, int]) -> list[str]:
    return sorted(name for name, amount in request.items() if amount > 0 and free.get(name, 0) < amount)


@dataclass
class Placement:
    """A tentative allocation: pod name -> node, and why the rest did not fit."""

    binds: dict[str, str] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # "Insufficient <res>" -> node count

    def fit_error(self, total_nodes: int) -> str:
        if not self.reasons:
            return f"0/{total_nodes} nodes are unavailable"
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(self.reasons.items()))
        return f"0/{total_nodes} nodes are unavailable: {parts}."


def place(
    pods: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    free: dict[str, Resources],
) -> Placement:
    """First-fit, in the given pod order and Node name order; `free` is updated in place for the
    pods placed (callers pass a copy when the placement may be discarded)."""
    result = Placement()
    ordered = sorted(nodes, key=lambda n: str(meta(n)["name"]))
    for pod in pods:
        request = pod_request(pod)
        name = str(meta(pod)["name"])
        chosen = None
        for node in ordered:
            node_name = str(meta(node)["name"])
            if not node_admits(node, pod):
                continue
            if fits(request, free.get(node_name, {})):
                chosen = node_name
                break
        if chosen is None:
            result.unplaced.append(name)
            for node in ordered:
                node_name = str(meta(node)["name"])
                if not node_admits(node, pod):
                    key = "node(s) didn't match Pod's node selector or had untolerated taints or were not ready"
                    result.reasons[key] = result.reasons.get(key, 0) + 1
                    continue
                for res in _shortfall(request, free.get(node_name, {})):
                    key = f"Insufficient {res}"
                    result.reasons[key] = result.reasons.get(key, 0) + 1
            continue
        free[chosen] = subtract(free[chosen], request)
        result.binds[name] = chosen
    return result
