"""Exact resource-request arithmetic over pod specs, for the PodGroup's `minResources`.

What a pod reserves is computed as the scheduler does (requests, limits standing in for absent
requests, sidecars, init containers, pod-level resources, overhead); the quantities themselves
(parsing, exact sums, the canonical form) are `kube.quantity`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fusioninfer.kube.quantity import InvalidQuantity, Quantity

Resources = dict[str, Quantity]


def add(*lists: Mapping[str, Quantity]) -> Resources:
    """The per-resource sum of several resource lists."""
    total: Resources = {}
    for resources in lists:
        for name, quantity in resources.items():
            total[name] = total[name] + quantity if name in total else quantity
    return total


def scale(resources: Mapping[str, Quantity], times: int) -> Resources:
    return {name: quantity * times for name, quantity in resources.items()}


def maximum(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> Resources:
    """The per-resource maximum (a resource missing on one side counts as zero)."""
    out: Resources = dict(a)
    for name, quantity in b.items():
        if name not in out or quantity.nanos > out[name].nanos:
            out[name] = quantity
    return out


def to_manifest(resources: Mapping[str, Quantity]) -> dict[str, str]:
    """A ResourceList as written into a manifest: canonical strings, keys sorted (stable apply)."""
    return {name: str(resources[name]) for name in sorted(resources)}


def _parse_list(raw: Any) -> Resources:
    """A ResourceList from a user's template; values that are not quantities are skipped.

    Skipping (not raising) keeps the builders total: the apiserver rejects the same template,
    with a precise message, when the workload that carries it is applied.
    """
    out: Resources = {}
    if not isinstance(raw, Mapping):
        return out
    for name, value in raw.items():
        if not isinstance(value, str | int | float):
            continue
        try:
            out[str(name)] = Quantity.parse(value)
        except InvalidQuantity:
            continue
    return out


def container_requests(container: Mapping[str, Any]) -> Resources:
    """What the scheduler reserves for a container: requests, and limits where requests are absent.

    This is the apiserver's defaulting (a limit without a request becomes the request), done per
    resource, so a template that only sets `limits: {nvidia.com/gpu: 8}` still counts its GPUs.
    """
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}
    return {**_parse_list(resources.get("limits")), **_parse_list(resources.get("requests"))}


def pod_requests(pod_spec: Mapping[str, Any]) -> Resources:
    """The effective requests of one pod, computed as the Kubernetes scheduler does.

    Regular containers and sidecars (init containers with `restartPolicy: Always`) run together
    and add up; a plain init container runs alone, beside the sidecars started before it, so only
    the largest such moment counts. Pod-level `resources` (cpu/memory) replace the container sum,
    and `overhead` comes on top.
    """
    total = add(*(container_requests(c) for c in _containers(pod_spec, "containers")))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for init in _containers(pod_spec, "initContainers"):
        requests = container_requests(init)
        if init.get("restartPolicy") == "Always":
            sidecars = add(sidecars, requests)
            total = add(total, requests)
            init_peak = maximum(init_peak, sidecars)
        else:
            init_peak = maximum(init_peak, add(requests, sidecars))
    total = maximum(total, init_peak)
    # Pod-level resources have the same shape as a container's, and the same defaulting.
    for name, quantity in container_requests(pod_spec).items():
        if name in ("cpu", "memory"):
            total[name] = quantity
    return add(total, _parse_list(pod_spec.get("overhead")))


def _containers(pod_spec: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    value = pod_spec.get(key)
    if not isinstance(value, list):
        return []
    return [c for c in value if isinstance(c, Mapping)]
