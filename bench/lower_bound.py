"""The lower bound: plain parallel clients writing exactly what the operator would write, the way
it writes them (the operator's own HTTP client: strict field validation, request counting)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Namespace

from bench.apiserver_profile import ApiserverProfile, start_profile
from bench.kube import control_plane_cpu, cpu_delta, cpu_snapshot, cpu_text
from bench.pool import run_pool, with_retries
from bench.results import RunResult, log
from bench.setup import BENCH_MANAGER, FIELD_MANAGER, LOWER_BOUND_SA, Bench, sa_user
from fusioninfer.api.v1alpha1 import API_VERSION, KIND
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, build
from fusioninfer.controller.operator import Operator, OperatorConfig
from fusioninfer.controller.status import Observed, compute_status
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.apply import apply, apply_status, with_hash_annotation
from fusioninfer.runtime.client import async_client
from fusioninfer.runtime.metrics import RuntimeMetrics


@dataclass
class LowerBoundRun:
    seconds: float
    writes: int
    retries: int
    apiserver_cpu_s: float
    client_cpu_s: float
    cpu: dict[str, float]


async def lower_bound(
    bench: Bench,
    manifests: list[Obj],
    concurrency: int,
    workers: int,
    *,
    watching: bool = False,
    profile: ApiserverProfile | None = None,
) -> LowerBoundRun:
    """Seconds, audited writes, retried requests and CPU of one lower-bound run.

    Shaped like the operator phase: `concurrency` submitters apply the services (as the
    benchmark does for the operator) and hand each created service to `workers` writers (the
    operator's workers), which apply its children and its status, one service at a time each.
    `watching`: the operator's informers (`Operator.start_watches`: the services, every child
    kind and the Pods of the namespace, on a connection pool of their own, as the operator has
    them) run in the same process, synced before the clock starts and fed all along, while
    nothing reconciles: what the watches alone cost."""
    admin = AsyncClient(config=KubeConfig.from_file(bench.cluster.kubeconfig_path), field_manager=BENCH_MANAGER)
    # The operator's client, so that a per-request cost (or saving) of ours shows on both sides
    # and the ratio measures what the operator adds: watches, caches, queueing, Events.
    writer = async_client(
        KubeConfig.from_file(bench.lower_bound_kubeconfig), field_manager=FIELD_MANAGER, metrics=RuntimeMetrics()
    )
    retries = [0]
    start_offset = bench.audit.offset()
    created: asyncio.Queue[Obj | None] = asyncio.Queue()

    async def submit(manifest: Obj) -> None:
        created.put_nowait(await with_retries(lambda: apply(admin, manifest, BENCH_MANAGER), retries))

    async def write(raw: Obj) -> None:
        isvc = parse(raw)
        built = build(isvc, BuildOptions(capabilities=bench.capabilities, owner_uid=raw["metadata"]["uid"]))
        observed = Observed()
        for obj in built.objects:
            desired = with_hash_annotation(obj)
            live = await with_retries(lambda d=desired: apply(writer, d, FIELD_MANAGER), retries)  # type: ignore[misc]
            observed.children[(obj["kind"], obj["metadata"]["name"])] = live
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": raw["metadata"]["name"], "namespace": raw["metadata"]["namespace"]},
            "status": compute_status(isvc, built, observed, None),
        }
        await with_retries(lambda: apply_status(writer, body, FIELD_MANAGER), retries)

    async def writer_loop() -> None:
        while (raw := await created.get()) is not None:
            await write(raw)

    async def submit_all() -> None:
        await run_pool(manifests, concurrency, submit)
        for _ in range(workers):
            created.put_nowait(None)

    namespace = manifests[0]["metadata"]["namespace"]
    watchers = watch_client = None
    if watching:
        config = KubeConfig.from_file(bench.lower_bound_kubeconfig)
        watch_client = async_client(config, field_manager=FIELD_MANAGER, metrics=RuntimeMetrics())
        watchers = Operator(writer, OperatorConfig(namespaces=[namespace]), watch_client=watch_client)
        await watchers.start_watches()
    try:
        # Warm up: TLS handshakes and token authentication before the clock starts.
        await asyncio.gather(*(c.get(Namespace, namespace) for c in (admin, writer) for _ in range(concurrency)))
        started, snap0 = time.monotonic(), cpu_snapshot(bench.cluster)
        profiling = start_profile(bench, profile)
        async with asyncio.TaskGroup() as group:
            group.create_task(submit_all())
            for _ in range(workers):
                group.create_task(writer_loop())
        seconds = time.monotonic() - started
        cpu = cpu_delta(snap0, cpu_snapshot(bench.cluster))
        if profiling is not None:
            await profiling
    finally:
        if watchers is not None and watch_client is not None:
            await watchers.stop_watches()
            await watch_client.close()
        await admin.close()
        await writer.close()
    writes = len(bench.audit.writes(start_offset, user=sa_user(LOWER_BOUND_SA)))
    return LowerBoundRun(seconds, writes, retries[0], control_plane_cpu(cpu), cpu.get("bench", 0.0), cpu)


async def lower_bound_run(
    bench: Bench,
    manifests: list[Obj],
    result: RunResult,
    *,
    concurrency: int,
    workers: int,
    watching: bool = False,
    profile: ApiserverProfile | None = None,
) -> None:
    """One lower-bound run into `result` (the best run counts). A `watching` run (see
    `lower_bound`) is recorded apart: it is a diagnostic, not the bound. Its Pods are not
    awaited: the next run has a control plane of its own."""
    run = await lower_bound(bench, manifests, concurrency, workers, watching=watching, profile=profile)
    if watching:
        result.lower_bound_watching_runs_s.append(run.seconds)
        if min(result.lower_bound_watching_runs_s) == run.seconds:
            result.cpu_lower_bound_watching = run.cpu
        log(f"  lower bound with the operator's watches: {run.seconds:.1f}s; CPU by process: {cpu_text(run.cpu)}")
    else:
        _record(result, run)


def _record(result: RunResult, run: LowerBoundRun) -> None:
    best = not result.lower_bound_runs_s or run.seconds < result.lower_bound_s
    result.lower_bound_runs_s.append(run.seconds)
    result.lower_bound_s = min(result.lower_bound_runs_s)
    result.lower_bound_writes = run.writes
    result.lower_bound_retries += run.retries
    if best:
        result.apiserver_cpu_lower_bound_s = run.apiserver_cpu_s
        result.lower_bound_client_cpu_s = run.client_cpu_s
        result.cpu_lower_bound = run.cpu
    log(
        f"  lower bound: {run.seconds:.1f}s, {run.writes} writes, CPU: apiserver+etcd {run.apiserver_cpu_s:.1f}s, "
        f"client {run.client_cpu_s:.1f}s; by process: {cpu_text(run.cpu)}"
    )
