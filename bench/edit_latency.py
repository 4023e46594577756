"""Edit latency at scale: with N services converged, how long one edit takes to reach the child
Deployment, and to be acknowledged in the service's status.

One service is edited `edits` times, one edit at a time, the way a user would (`kubectl apply`
of the whole manifest: server-side apply by the benchmark's field manager): its worker's
`replicas` alternating 1 and 2, then separately its container image alternating two tags. For
each edit two moments are taken from watches opened before the first edit: the child Deployment
carrying the new value, and `status.observedGeneration` reaching the edit's generation. The
clock starts just before the apply request is sent, so the apply's own round trip is included,
as a user would see it.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lightkube import AsyncClient

from bench.kube import ApiHttp, collection_path
from bench.pool import with_retries
from fusioninfer.api.v1alpha1 import API_VERSION, PLURAL
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.apply import apply

IMAGES = ("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:v0.11.1")
EDITS = ("replicas", "image")  # what is edited, in this order


@dataclass
class EditLatency:
    """Seconds from each edit to the Deployment updated and to the status observing it."""

    what: str
    to_applied_s: list[float] = field(default_factory=list)  # the benchmark's own apply request
    to_deployment_s: list[float] = field(default_factory=list)
    to_observed_s: list[float] = field(default_factory=list)
    timeouts: int = 0


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in [0, 1]) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def worker_container(obj: Obj) -> Obj:
    """The first container of a Deployment's pod template."""
    return dict(obj["spec"]["template"]["spec"]["containers"][0])


def edited(manifest: Obj, what: str, index: int) -> tuple[Obj, Callable[[Obj], bool]]:
    """The manifest after edit `index` of kind `what`, and the test that a Deployment shows it."""
    out = copy.deepcopy(manifest)
    worker = next(r for r in out["spec"]["roles"] if r["componentType"] == "worker")
    if what == "replicas":
        replicas = 2 if index % 2 == 0 else 1
        worker["replicas"] = replicas
        return out, lambda d: int(d["spec"].get("replicas", 1)) == replicas
    image = IMAGES[(index + 1) % 2]
    worker["template"]["spec"]["containers"][0]["image"] = image
    return out, lambda d: worker_container(d).get("image") == image


class Watched:
    """The latest Deployment and service generation seen, with an event to wait on changes."""

    def __init__(self) -> None:
        self.deployment: Obj | None = None
        self.observed_generation = 0
        self.changed = asyncio.Event()

    def on_deployment(self, event: str, obj: Obj) -> None:
        if event != "DELETED":
            self.deployment = obj
            self.changed.set()

    def on_service(self, event: str, obj: Obj) -> None:
        if event != "DELETED":
            self.observed_generation = int((obj.get("status") or {}).get("observedGeneration") or 0)
            self.changed.set()

    async def until(self, check: Callable[[], bool], deadline: float) -> float | None:
        """monotonic() when `check()` first holds, None at the deadline."""
        while not check():
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return None
        return time.monotonic()


async def measure(
    admin: AsyncClient,
    api: ApiHttp,
    manifest: Obj,
    *,
    deployment: str,
    what: str,
    edits: int,
    manager: str,
    wait: float = 30.0,
) -> EditLatency:
    """Edit `manifest`'s service `edits` times (`what`: replicas or image), one at a time."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    watched = Watched()
    deployments = collection_path("apps/v1", "deployments", namespace)
    services = collection_path(API_VERSION, PLURAL, namespace)
    tasks = []
    for path, handler, fields in (
        (deployments, watched.on_deployment, f"metadata.name={deployment}"),
        (services, watched.on_service, f"metadata.name={name}"),
    ):
        body = (await api.get(path, params={"fieldSelector": fields})).json()
        for item in body.get("items") or []:
            handler("ADDED", item)
        rv = str(body["metadata"]["resourceVersion"])
        tasks.append(asyncio.create_task(api.watch(path, rv, handler, fields=fields, metadata_only=False)))
    result = EditLatency(what)
    retries = [0]
    try:
        current = manifest
        for index in range(edits):
            current, shows = edited(current, what, index)
            started = time.monotonic()
            live = await with_retries(lambda m=current: apply(admin, m, manager), retries)  # type: ignore[misc]
            applied = time.monotonic()
            generation = int(live["metadata"]["generation"])
            deadline = started + wait

            def deployment_shows(shows: Callable[[Obj], bool] = shows) -> bool:
                return watched.deployment is not None and shows(watched.deployment)

            def observed(generation: int = generation) -> bool:
                return watched.observed_generation >= generation

            at_deployment = await watched.until(deployment_shows, deadline)
            at_observed = await watched.until(observed, deadline)
            if at_deployment is None or at_observed is None:
                result.timeouts += 1
                continue
            result.to_applied_s.append(applied - started)
            result.to_deployment_s.append(at_deployment - started)
            result.to_observed_s.append(at_observed - started)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


def summary(measured: EditLatency) -> dict[str, float | int | None]:
    """p50/p99 in milliseconds of both latencies, with the number of edits and of timeouts; the
    apply round trip (the benchmark's own request, which no operator can shorten) and the
    slowest edit's three figures, which say whether a tail is the apiserver's or the operator's."""

    def ms(values: list[float], q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 1)

    slowest: dict[str, float | int | None] = {}
    if measured.to_deployment_s:
        index = max(range(len(measured.to_deployment_s)), key=lambda i: measured.to_deployment_s[i])
        slowest = {
            "slowest_edit": index,
            "slowest_applied_ms": round(measured.to_applied_s[index] * 1000, 1),
            "slowest_deployment_ms": round(measured.to_deployment_s[index] * 1000, 1),
            "slowest_observed_ms": round(measured.to_observed_s[index] * 1000, 1),
        }
    return {
        "edits": len(measured.to_deployment_s) + measured.timeouts,
        "timeouts": measured.timeouts,
        "deployment_p50_ms": ms(measured.to_deployment_s, 0.5),
        "deployment_p99_ms": ms(measured.to_deployment_s, 0.99),
        "observed_p50_ms": ms(measured.to_observed_s, 0.5),
        "observed_p99_ms": ms(measured.to_observed_s, 0.99),
        "applied_p50_ms": ms(measured.to_applied_s, 0.5),
        "applied_p99_ms": ms(measured.to_applied_s, 0.99),
        **slowest,
    }
