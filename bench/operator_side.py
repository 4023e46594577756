"""The operator side: `fusioninfer run` as a subprocess, convergence read from the audit log,
then the settle and the quiet window (audit log), RSS and CPU."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from lightkube import AsyncClient, KubeConfig
from lightkube.resources.core_v1 import Namespace

from bench import edit_latency, promtext
from bench.apiserver_profile import ApiserverProfile, start_profile
from bench.kube import (
    ApiHttp,
    AuditTail,
    Write,
    collection_path,
    control_plane_cpu,
    cpu_delta,
    cpu_seconds,
    cpu_snapshot,
    cpu_text,
    parse_write,
    proc_status,
    summarize,
    wait_pods,
)
from bench.pool import run_pool, with_retries
from bench.report import counts_text, gc_text, seconds_as_ms
from bench.results import RunResult, log
from bench.setup import (
    BENCH_MANAGER,
    CONTROL_NS,
    GC_PAUSES,
    INFORMER_EVENTS,
    LEADER_GAUGE,
    LEASE_RESOURCE,
    MANAGED_SELECTOR,
    MEMO_LOOKUPS,
    OPERATOR_SA,
    QUEUE_HISTOGRAM,
    RECONCILE_HISTOGRAM,
    TRIGGERS,
    Bench,
    sa_user,
)
from bench.workload import Expected
from fusioninfer.api.v1alpha1 import API_VERSION, PLURAL
from fusioninfer.builders.kinds import CHILD_KINDS
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.apply import apply
from fusioninfer_dev.localcluster.components import pick_free_ports

STATUS_RESOURCE = PLURAL
# Cheap byte tests that keep the JSON decoding to the lines that can matter.
STATUS_MARKERS = (b'"subresource":"status"', PLURAL.encode())


class Tracker:
    """Convergence as the apiserver's audit log records it: a successful status write by the
    operator for every service, then one LIST confirming that every `status.observedGeneration`
    is current (a service whose write was not yet current is followed further).

    The benchmark opens no watch of its own: a watch of the services (let alone of every child
    kind) would add apiserver and client CPU to the very run being measured, which the lower
    bound does not carry. Convergence time is the apiserver's completion time of the last of
    those status writes (its `stageTimestamp`), so the polling period adds nothing to it."""

    def __init__(self, tail: AuditTail, user: str, expected: Expected) -> None:
        self.tail = tail
        self.user = user
        self.unseen = set(expected.services)
        self.last_write_epoch = 0.0

    def poll(self) -> None:
        for line in self.tail.new_lines():
            if not all(marker in line for marker in STATUS_MARKERS):
                continue
            write = parse_write(line)
            if write is None or write.user != self.user or write.resource != STATUS_RESOURCE:
                continue
            if write.subresource == "status" and 200 <= write.code < 300 and write.name in self.unseen:
                self.unseen.discard(write.name)
                self.last_write_epoch = max(self.last_write_epoch, write.at)

    async def converged(self, api: ApiHttp, namespace: str, period: float = 0.05) -> float:
        """Waits until every service's status is current; returns the epoch of the last write."""
        while True:
            self.poll()
            if self.unseen:
                await asyncio.sleep(period)
                continue
            stale = await stale_services(api, namespace)
            if not stale:
                return self.last_write_epoch
            self.unseen = stale


async def stale_services(api: ApiHttp, namespace: str) -> set[str]:
    """Services of `namespace` whose `status.observedGeneration` is not their generation."""
    body = (await api.get(collection_path(API_VERSION, PLURAL, namespace))).json()
    stale: set[str] = set()
    for item in body.get("items") or []:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        if status.get("observedGeneration") != meta.get("generation"):
            stale.add(str(meta.get("name", "")))
    return stale


async def missing_children(api: ApiHttp, namespace: str, expected: Expected) -> set[tuple[str, str]]:
    """The expected children of `namespace` that do not exist (one metadata LIST per kind)."""
    present: set[tuple[str, str]] = set()
    for kind in CHILD_KINDS:
        if not any(k == kind.kind for k, _ in expected.children):
            continue
        items, _ = await api.list_meta(collection_path(kind.api_version, kind.plural, namespace), MANAGED_SELECTOR)
        present.update((kind.kind, (item.get("metadata") or {}).get("name", "")) for item in items)
    return set(expected.children) - present


CHILD_RESOURCES = frozenset(kind.plural for kind in CHILD_KINDS)


def last_child_write(writes: list[Write], since_epoch: float) -> float:
    """Seconds from `since_epoch` until the apiserver finished the last write of a child."""
    stamps = [w.at for w in writes if w.resource in CHILD_RESOURCES and not w.subresource and w.at]
    return max(stamps) - since_epoch if stamps else 0.0


async def scrape(url: str) -> list[promtext.Sample]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        resp = await http.get(url)
        resp.raise_for_status()
        return promtext.parse(resp.text)


async def wait_leading(port: int, wait: float, alive: Callable[[], bool]) -> None:
    """Until the operator holds its Lease and is ready (caches synced, workers running): a
    follower also answers /readyz, and the clock must not start while it waits for the Lease."""
    deadline = time.monotonic() + wait
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the operator exited during start-up")
            with contextlib.suppress(httpx.HTTPError):
                leading = promtext.total(promtext.parse((await http.get(f"{base}/metrics")).text), LEADER_GAUGE)
                if leading >= 1 and (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the operator did not lead and become ready within {wait:.0f}s")


def operator_argv(bench: Bench, port: int, workers: int, namespace: str, profile: Path | None = None) -> list[str]:
    # With `profile`, the operator runs under pyinstrument (a sampling profiler; install it
    # yourself) and writes a text report there when it stops.
    prefix = ["-m", "pyinstrument", "-r", "text", "-o", str(profile.absolute())] if profile else []
    return [
        sys.executable,
        *prefix,
        "-m",
        "fusioninfer.cli",
        "run",
        "--kubeconfig",
        str(bench.operator_kubeconfig),
        "--namespace",
        namespace,
        "--workers",
        str(workers),
        "--metrics-bind-address",
        f"127.0.0.1:{port}",
        "--health-probe-bind-address",
        "0",
        "--leader-election-namespace",
        CONTROL_NS,
    ]


def apiserver_writes(samples: list[promtext.Sample]) -> dict[str, float]:
    from bench.kube import READ_VERBS

    per = promtext.by_labels(
        samples,
        "apiserver_request_total",
        ("verb", "resource", "subresource"),
        lambda lb: lb.get("verb") not in READ_VERBS,
    )
    return {" ".join(p for p in key if p): v for key, v in per.items()}


async def operator_phase(
    bench: Bench,
    manifests: list[Obj],
    expected: Expected,
    *,
    concurrency: int,
    workers: int,
    quiet: float,
    settle_timeout: float,
    result: RunResult,
    skip_idle: bool = False,
    profile: Path | None = None,
    edits: int = 0,
    apiserver_profile: ApiserverProfile | None = None,
) -> None:
    cluster = bench.cluster
    namespace = manifests[0]["metadata"]["namespace"]
    api = ApiHttp(cluster.server, cluster.admin_token)
    admin = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig_path), field_manager=BENCH_MANAGER)
    (port,) = pick_free_ports(1)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    user = sa_user(OPERATOR_SA)
    try:
        record = cluster.start_process("operator", operator_argv(bench, port, workers, namespace, profile))
        pid = record.pid
        await wait_leading(port, 60, lambda: Path(f"/proc/{pid}").exists())
        before = await scrape(metrics_url)
        snap0 = cpu_snapshot(cluster, operator=pid)
        offset0 = bench.audit.offset()
        tracker = Tracker(AuditTail(bench.audit, offset0), user, expected)
        retries = [0]
        await asyncio.gather(*(admin.get(Namespace, namespace) for _ in range(concurrency)))

        started, started_epoch = time.monotonic(), time.time()
        profiling = start_profile(bench, apiserver_profile)

        async def submit(manifest: Obj) -> None:
            await with_retries(lambda: apply(admin, manifest, BENCH_MANAGER), retries)

        await run_pool(manifests, concurrency, submit)
        result.operator_submitted_s = time.monotonic() - started
        last_status_epoch = await tracker.converged(api, namespace)
        late = await missing_children(api, namespace, expected)
        if late:  # not expected: the operator writes a status only after applying the children
            result.notes.append(f"N={result.n}: {len(late)} children were missing when every status was current")
            while late:
                await asyncio.sleep(0.1)
                late = await missing_children(api, namespace, expected)
        # The apiserver's clock for the last status write; later if children were late.
        result.operator_s = last_status_epoch - started_epoch if not late else time.monotonic() - started
        result.operator_runs_s.append(result.operator_s)
        result.cpu_operator = cpu_delta(snap0, cpu_snapshot(cluster, operator=pid))
        result.operator_cpu_convergence_s = result.cpu_operator.get("operator", 0.0)
        result.apiserver_cpu_operator_s = control_plane_cpu(result.cpu_operator)
        offset1 = bench.audit.offset()
        after = await scrape(metrics_url)
        conv_writes = [w for w in bench.audit.writes(offset0, offset1, user=user) if w.resource != LEASE_RESOURCE]
        result.operator_writes = len(conv_writes)
        result.operator_writes_by_kind = summarize(conv_writes)
        result.operator_children_s = last_child_write(conv_writes, started_epoch)
        hist = promtext.observed_between(after, before, RECONCILE_HISTOGRAM)
        result.reconciles = int(hist[-1][1]) if hist else 0
        result.reconcile_p50_s = promtext.quantile(0.5, hist)
        result.reconcile_p99_s = promtext.quantile(0.99, hist)
        waits = promtext.observed_between(after, before, QUEUE_HISTOGRAM)
        result.queue_wait_p50_s = promtext.quantile(0.5, waits)
        result.queue_wait_p99_s = promtext.quantile(0.99, waits)
        result.reconcile_errors = int(
            promtext.total(after, "controller_runtime_reconcile_errors_total")
            - promtext.total(before, "controller_runtime_reconcile_errors_total")
        )
        result.informer_events = promtext.counter_delta(after, before, INFORMER_EVENTS, ("resource", "event"))
        result.reconcile_triggers = promtext.counter_delta(after, before, TRIGGERS, ("resource", "event"))
        result.memo_lookups = promtext.counter_delta(after, before, MEMO_LOOKUPS, ("result",))
        result.gc_pauses = gc_pauses(after, before)
        if profiling is not None:  # after the counts above: they are of the convergence alone
            await profiling
        log(
            f"  operator converged in {result.operator_s:.1f}s "
            f"(children {result.operator_children_s:.1f}s), {result.reconciles} reconciles, "
            f"{result.operator_writes} writes; last service submitted at {result.operator_submitted_s:.1f}s, "
            f"queue wait p50/p99 {seconds_as_ms(result.queue_wait_p50_s)}/{seconds_as_ms(result.queue_wait_p99_s)} ms, "
            f"reconcile p50/p99 {seconds_as_ms(result.reconcile_p50_s)}/{seconds_as_ms(result.reconcile_p99_s)} ms; "
            f"CPU by process: {cpu_text(result.cpu_operator)}; reconciles triggered by "
            f"{counts_text(result.reconcile_triggers)} (of changes delivered: {counts_text(result.informer_events)}); "
            f"memo {counts_text(result.memo_lookups)}; GC pauses {gc_text(result.gc_pauses)}"
        )

        if skip_idle:
            mem = proc_status(pid)
            result.peak_rss_mb, result.rss_after_mb = mem["VmHWM"] / 2**20, mem["VmRSS"] / 2**20
            return
        # Settle: every Pod created by the controller-manager, the operator's queue empty and
        # no write of the operator for a few seconds.
        settle_start = time.monotonic()
        deadline = settle_start + settle_timeout
        pods_ok = await wait_pods(api, namespace, expected.pods, settle_timeout)
        gap = 5.0
        while time.monotonic() < deadline:
            mark = bench.audit.offset()
            await asyncio.sleep(gap)
            samples = await scrape(metrics_url)
            recent = [w for w in bench.audit.writes(mark, user=user) if w.resource != LEASE_RESOURCE]
            if not recent and promtext.total(samples, "workqueue_depth") == 0:
                result.settled = pods_ok
                break
        result.settle_s = time.monotonic() - settle_start
        if not result.settled:
            result.notes.append(f"N={result.n}: not settled after {settle_timeout:.0f}s (pods created: {pods_ok})")
        log(f"  settled in {result.settle_s:.1f}s; quiet window of {quiet:.0f}s")

        # The quiet window.
        api_before = apiserver_writes(promtext.parse(await api.metrics()))
        q_offset = bench.audit.offset()
        q_start = time.monotonic()
        await asyncio.sleep(quiet)
        result.quiet_s = time.monotonic() - q_start
        idle = bench.audit.writes(q_offset, user=user)
        idle_non_lease = [w for w in idle if w.resource != LEASE_RESOURCE]
        result.idle_writes = len(idle_non_lease)
        result.idle_writes_by_kind = summarize(idle_non_lease)
        result.idle_lease_writes = len(idle) - len(idle_non_lease)
        api_after = apiserver_writes(promtext.parse(await api.metrics()))
        delta = {k: int(v - api_before.get(k, 0.0)) for k, v in api_after.items()}
        delta = {k: v for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v > 0}
        result.idle_apiserver_writes = sum(delta.values())
        result.idle_apiserver_writes_by_resource = delta
        mem = proc_status(pid)
        result.peak_rss_mb = mem["VmHWM"] / 2**20
        result.rss_after_mb = mem["VmRSS"] / 2**20
        result.operator_cpu_s = cpu_seconds(pid)
        if edits:
            await edit_latencies(admin, api, manifests, edits, result, metrics_url)
        if retries[0]:
            result.notes.append(f"N={result.n}: {retries[0]} retried service applies in the operator phase")
    finally:
        await api.close()
        await admin.close()
        # Under pyinstrument the report is written at exit, which takes a while at this size.
        cluster.stop_process("operator", timeout=120.0 if profile else 10.0)


def gc_pauses(after: list[promtext.Sample], before: list[promtext.Sample]) -> dict[str, dict[str, float]]:
    """The operator's garbage-collector pauses between two scrapes, per generation."""
    grown = promtext.histogram_growth(after, before, GC_PAUSES, "generation")
    return {gen: {"collections": n, "total_ms": round(s * 1000, 1)} for gen, (n, s) in grown.items()}


async def edit_latencies(
    admin: AsyncClient, api: ApiHttp, manifests: list[Obj], edits: int, result: RunResult, metrics_url: str
) -> None:
    """Edit latency at scale (`bench.edit_latency`): a service without a router, edited `edits`
    times in its replicas, then `edits` times in its image, with every other service converged.
    The operator's reconcile p99 and GC pauses during each kind of edit are kept beside it:
    they tell a tail spent in the operator from one spent at the apiserver."""
    target = next(m for m in manifests if len(m["spec"]["roles"]) == 1)
    name = target["metadata"]["name"]
    for what in edit_latency.EDITS:
        before = await scrape(metrics_url)
        measured = await edit_latency.measure(
            admin, api, target, deployment=f"{name}-inference", what=what, edits=edits, manager=BENCH_MANAGER
        )
        after = await scrape(metrics_url)
        summary = edit_latency.summary(measured)
        hist = promtext.observed_between(after, before, RECONCILE_HISTOGRAM)
        p99 = promtext.quantile(0.99, hist)
        summary["reconciles"] = int(hist[-1][1]) if hist else 0
        summary["reconcile_p99_ms"] = None if p99 is None else round(p99 * 1000, 1)
        result.edit_latency[what] = summary
        result.edit_gc_pauses[what] = gc_pauses(after, before)
        log(f"  edit latency ({what}): {summary}; GC pauses {gc_text(result.edit_gc_pauses[what])}")
        # The next kind of edit starts from what this one left.
        target = edit_latency.edited(target, what, edits - 1)[0] if edits % 2 else target
