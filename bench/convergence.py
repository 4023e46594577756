"""Convergence benchmark: N InferenceServices applied at once, the operator against a lower bound.

For each N, on a fresh local control plane (real kube-apiserver + etcd + controller-manager +
scheduler built by `fusioninfer cluster build`, no nodes: Pods stay Pending, which the benchmark does
not need):

1. **Lower bound** (namespace ``bench-lb``): a plain lightkube AsyncClient with `--concurrency`
   workers; each applies an InferenceService, then server-side-applies exactly the children the
   operator would create (the same pure builders, with the owner's UID and the hash annotation)
   and one status write. No watches, no caches, no events: the least work that reaches the same
   end state. Time = until the last request returned.
2. **Operator** (namespace ``bench-op``): `fusioninfer run` as a subprocess (leader election on,
   `--workers` reconcilers), watching ``bench-op`` only. The benchmark applies the N services with
   the same concurrency and watches (metadata-only) until every expected child exists and every
   service has ``status.observedGeneration == metadata.generation``.
3. **Idle**: once the controller-manager has created every Pod and the operator has gone quiet,
   a quiet window of `--quiet` seconds in which the apiserver's audit log records every write of
   the operator's ServiceAccount (goal: 0, Lease renewals of leader election reported apart);
   ``apiserver_request_total`` gives the writes of everybody, for context.
4. Reconcile latency p50/p99 from the operator's ``controller_runtime_reconcile_time_seconds``
   (reconciles during convergence), and the operator's peak RSS (``VmHWM``) and CPU time.

Run: ``python -m bench.convergence --n 100 500 1000 --write-docs``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import httpx2
import yaml
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding

from bench import promtext
from bench.kube import ApiHttp, AuditLog, audit_policy, collection_path, cpu_seconds, proc_status, summarize
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.builders.context import OPTIONAL_APIS
from fusioninfer.builders.kinds import CHILD_KINDS, child_kind
from fusioninfer.controller.discovery import capabilities_from, slim_crd
from fusioninfer.controller.status import Observed, compute_status
from fusioninfer.install import install_crds
from fusioninfer.localcluster.cluster import LocalCluster
from fusioninfer.localcluster.components import pick_free_ports
from fusioninfer.localcluster.crds import BUNDLED_CRD_DIR
from fusioninfer.runtime.apply import apply, apply_status, with_hash_annotation
from fusioninfer.runtime.version import server_version

Obj = dict[str, Any]
T = TypeVar("T")

CONTROL_NS = "bench-system"
LB_NS = "bench-lb"  # the lower bound before the operator phase ...
LB2_NS = "bench-lb2"  # ... and after it
OP_NS = "bench-op"
OPERATOR_SA = "operator"
LOWER_BOUND_SA = "lower-bound"
FIELD_MANAGER = "fusioninfer"  # the operator's field manager: the lower bound writes the same fields
BENCH_MANAGER = "bench"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=fusioninfer"
LEASE_RESOURCE = "leases"
RECONCILE_HISTOGRAM = "controller_runtime_reconcile_time_seconds"
REPO_ROOT = Path(__file__).resolve().parents[1]


def sa_user(name: str) -> str:
    return f"system:serviceaccount:{CONTROL_NS}:{name}"


# --------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------


def service_manifest(namespace: str, index: int, router_every: int) -> Obj:
    """A monolithic service (the README's example); every `router_every`-th also has a
    prefix-cache router (endpoint picker, InferencePool, HTTPRoute: 9 children instead of 1)."""
    roles: list[Obj] = [
        {
            "name": "inference",
            "componentType": "worker",
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "args": ["--model", "Qwen/Qwen3-8B"],
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ]
                }
            },
        }
    ]
    if router_every > 0 and index % router_every == 0:
        roles.insert(
            0,
            {
                "name": "router",
                "componentType": "router",
                "strategy": "prefix-cache",
                "httproute": {"parentRefs": [{"name": "inference-gateway"}]},
            },
        )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": f"svc-{index:05d}", "namespace": namespace},
        "spec": {"roles": roles},
    }


@dataclass(frozen=True)
class Expected:
    """What convergence means for one namespace: these children exist, these services are observed."""

    children: frozenset[tuple[str, str]]
    services: frozenset[str]
    pods: int


def expected_state(manifests: list[Obj], caps: Capabilities) -> Expected:
    children: set[tuple[str, str]] = set()
    pods = 0
    for manifest in manifests:
        for obj in build(parse(manifest), BuildOptions(capabilities=caps)).objects:
            children.add((obj["kind"], obj["metadata"]["name"]))
            if obj["kind"] == "Deployment":
                pods += int(obj["spec"].get("replicas", 1))
    return Expected(frozenset(children), frozenset(m["metadata"]["name"] for m in manifests), pods)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    n: int
    services_with_router: int
    children: int
    concurrency: int
    workers: int
    lower_bound_s: float = 0.0  # the best of the runs before and after the operator phase
    lower_bound_runs_s: list[float] = field(default_factory=list)
    lower_bound_writes: int = 0
    lower_bound_retries: int = 0
    operator_s: float = 0.0
    operator_children_s: float = 0.0
    operator_writes: int = 0
    operator_writes_by_kind: dict[str, int] = field(default_factory=dict)
    reconciles: int = 0
    reconcile_errors: int = 0
    reconcile_p50_s: float | None = None
    reconcile_p99_s: float | None = None
    settle_s: float = 0.0
    settled: bool = False
    quiet_s: float = 0.0
    idle_writes: int = 0
    idle_writes_by_kind: dict[str, int] = field(default_factory=dict)
    idle_lease_writes: int = 0
    idle_apiserver_writes: int = 0
    idle_apiserver_writes_by_resource: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    rss_after_mb: float = 0.0
    operator_cpu_s: float = 0.0
    operator_cpu_convergence_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.operator_s / self.lower_bound_s if self.lower_bound_s else float("nan")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


async def with_retries(fn: Callable[[], Awaitable[T]], counter: list[int], attempts: int = 6) -> T:
    """`fn()`, retried on 429/5xx/transport errors (a loaded apiserver sheds load that way)."""
    for attempt in range(attempts):
        try:
            return await fn()
        except ApiError as exc:
            if exc.status.code not in (409, 429, 500, 503, 504) or attempt == attempts - 1:
                raise
        except (httpx.TransportError, httpx2.TransportError):  # lightkube's client is httpx2
            if attempt == attempts - 1:
                raise
        counter[0] += 1
        await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


async def run_pool(items: Sequence[T], concurrency: int, fn: Callable[[T], Awaitable[None]]) -> None:
    """`fn(item)` for every item, at most `concurrency` at a time; the first error cancels the rest."""
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await fn(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(items)) or 1):
            group.create_task(worker())


def resource_for(api_version: str, kind: str) -> Any:
    from fusioninfer.runtime.kinds import default_registry

    if (api_version, kind) == (API_VERSION, KIND):
        return default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)
    entry = child_kind(api_version, kind)
    if entry.capability is not None:
        return default_registry.register(api_version, kind, plural=entry.plural, namespaced=True)
    return default_registry.resolve(api_version, kind)


# --------------------------------------------------------------------------------------------
# Cluster set-up
# --------------------------------------------------------------------------------------------


@dataclass
class Bench:
    cluster: LocalCluster
    audit: AuditLog
    operator_kubeconfig: Path
    lower_bound_kubeconfig: Path
    capabilities: Capabilities


def tmpfs() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def start_cluster(work: Path) -> Bench:
    work.mkdir(parents=True, exist_ok=True)
    policy = work / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(audit_policy([sa_user(OPERATOR_SA), sa_user(LOWER_BOUND_SA)])))
    audit_path = work / "audit.log"
    audit_path.unlink(missing_ok=True)
    cluster = LocalCluster(
        work / "cluster",
        etcd_parent_dir=tmpfs(),
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_path}",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
        ],
    )
    cluster.up()
    try:
        install_crds(cluster.kubeconfig_path, [BUNDLED_CRD_DIR])
        with cluster.client(field_manager=BENCH_MANAGER) as client:
            for ns in (CONTROL_NS, LB_NS, OP_NS, LB2_NS):
                client.create(Namespace(metadata=ObjectMeta(name=ns)))
            for sa in (OPERATOR_SA, LOWER_BOUND_SA):
                client.create(ServiceAccount(metadata=ObjectMeta(name=sa, namespace=CONTROL_NS)))
                client.create(
                    ClusterRoleBinding(
                        metadata=ObjectMeta(name=f"bench-{sa}"),
                        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
                        subjects=[Subject(kind="ServiceAccount", name=sa, namespace=CONTROL_NS)],
                    )
                )
            caps = discover_capabilities(client)
        return Bench(
            cluster=cluster,
            audit=AuditLog(audit_path),
            operator_kubeconfig=cluster.service_account_kubeconfig(CONTROL_NS, OPERATOR_SA),
            lower_bound_kubeconfig=cluster.service_account_kubeconfig(CONTROL_NS, LOWER_BOUND_SA),
            capabilities=caps,
        )
    except BaseException:
        cluster.down()
        raise


def discover_capabilities(client: Client) -> Capabilities:
    """What the operator will see: established CRDs (as its discovery reads them) + the version."""
    caps = capabilities_from([slim_crd(c.to_dict()) for c in client.list(CustomResourceDefinition)])
    return Capabilities.of({name: getattr(caps, name) for name in OPTIONAL_APIS}, server_version(client))


# --------------------------------------------------------------------------------------------
# Phase 1: the lower bound
# --------------------------------------------------------------------------------------------


async def lower_bound(bench: Bench, manifests: list[Obj], concurrency: int, workers: int) -> tuple[float, int, int]:
    """Seconds, audited writes and retried requests of one lower-bound run.

    Shaped like the operator phase: `concurrency` submitters apply the services (as the
    benchmark does for the operator) and hand each created service to `workers` writers (the
    operator's workers), which apply its children and its status, one service at a time each."""
    admin = AsyncClient(config=KubeConfig.from_file(bench.cluster.kubeconfig_path), field_manager=BENCH_MANAGER)
    writer = AsyncClient(config=KubeConfig.from_file(bench.lower_bound_kubeconfig), field_manager=FIELD_MANAGER)
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

    try:
        # Warm up: TLS handshakes and token authentication before the clock starts.
        namespace = manifests[0]["metadata"]["namespace"]
        await asyncio.gather(*(c.get(Namespace, namespace) for c in (admin, writer) for _ in range(concurrency)))
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            group.create_task(submit_all())
            for _ in range(workers):
                group.create_task(writer_loop())
        seconds = time.monotonic() - started
    finally:
        await admin.close()
        await writer.close()
    return seconds, len(bench.audit.writes(start_offset, user=sa_user(LOWER_BOUND_SA))), retries[0]


async def wait_pods(api: ApiHttp, namespace: str, expected: int, wait: float) -> bool:
    """Wait until the controller-manager has created `expected` Pods in `namespace`."""
    deadline = time.monotonic() + wait
    path = collection_path("v1", "pods", namespace)
    while time.monotonic() < deadline:
        items, _ = await api.list_meta(path)
        if len(items) >= expected:
            return True
        await asyncio.sleep(2.0)
    return False


# --------------------------------------------------------------------------------------------
# Phase 2: the operator
# --------------------------------------------------------------------------------------------


class Tracker:
    """Convergence as seen through watches: expected children present, services observed."""

    def __init__(self, expected: Expected) -> None:
        self.missing_children = set(expected.children)
        self.unobserved = set(expected.services)
        self.children_done_at: float | None = None
        self.done = asyncio.Event()
        self._check()

    def on_child(self, kind: str) -> Callable[[str, Obj], None]:
        def handle(event: str, obj: Obj) -> None:
            if event != "DELETED":
                self.missing_children.discard((kind, (obj.get("metadata") or {}).get("name", "")))
                self._check()

        return handle

    def on_service(self, event: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        if event != "DELETED" and status.get("observedGeneration") == meta.get("generation") is not None:
            self.unobserved.discard(meta.get("name", ""))
            self._check()

    def _check(self) -> None:
        if not self.missing_children and self.children_done_at is None:
            self.children_done_at = time.monotonic()
        if not self.missing_children and not self.unobserved:
            self.done.set()


async def start_watches(api: ApiHttp, namespace: str, tracker: Tracker) -> list[asyncio.Task[None]]:
    """List-then-watch every child kind (metadata only) and the services of `namespace`."""
    tasks: list[asyncio.Task[None]] = []
    for kind in CHILD_KINDS:
        path = collection_path(kind.api_version, kind.plural, namespace)
        try:
            items, rv = await api.list_meta(path, MANAGED_SELECTOR)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:
                continue  # API not installed
            raise
        handler = tracker.on_child(kind.kind)
        for item in items:
            handler("ADDED", item)
        tasks.append(asyncio.create_task(api.watch(path, rv, handler, labels=MANAGED_SELECTOR)))
    path = collection_path(API_VERSION, PLURAL, namespace)
    resp = await api.get(path)
    body = resp.json()
    for item in body.get("items") or []:
        tracker.on_service("ADDED", item)
    rv = str(body["metadata"]["resourceVersion"])
    tasks.append(asyncio.create_task(api.watch(path, rv, tracker.on_service, metadata_only=False)))
    return tasks


async def scrape(url: str) -> list[promtext.Sample]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        resp = await http.get(url)
        resp.raise_for_status()
        return promtext.parse(resp.text)


async def wait_http_ok(url: str, wait: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + wait
    async with httpx.AsyncClient(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the operator exited during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {wait:.0f}s")


def operator_argv(bench: Bench, port: int, workers: int, profile: Path | None = None) -> list[str]:
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
        OP_NS,
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
) -> None:
    cluster = bench.cluster
    api = ApiHttp(cluster.server, cluster.admin_token)
    admin = AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig_path), field_manager=BENCH_MANAGER)
    (port,) = pick_free_ports(1)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    user = sa_user(OPERATOR_SA)
    watches: list[asyncio.Task[None]] = []
    try:
        record = cluster.start_process("operator", operator_argv(bench, port, workers, profile))
        pid = record.pid
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", 60, lambda: Path(f"/proc/{pid}").exists())
        tracker = Tracker(expected)
        watches = await start_watches(api, OP_NS, tracker)
        before = await scrape(metrics_url)
        cpu0 = cpu_seconds(pid)
        offset0 = bench.audit.offset()
        retries = [0]
        await asyncio.gather(*(admin.get(Namespace, OP_NS) for _ in range(concurrency)))

        started = time.monotonic()

        async def submit(manifest: Obj) -> None:
            await with_retries(lambda: apply(admin, manifest, BENCH_MANAGER), retries)

        await run_pool(manifests, concurrency, submit)
        await tracker.done.wait()
        result.operator_s = time.monotonic() - started
        result.operator_children_s = (tracker.children_done_at or started) - started
        result.operator_cpu_convergence_s = cpu_seconds(pid) - cpu0
        offset1 = bench.audit.offset()
        after = await scrape(metrics_url)
        conv_writes = [w for w in bench.audit.writes(offset0, offset1, user=user) if w.resource != LEASE_RESOURCE]
        result.operator_writes = len(conv_writes)
        result.operator_writes_by_kind = summarize(conv_writes)
        hist = promtext.histogram_delta(
            promtext.buckets(after, RECONCILE_HISTOGRAM), promtext.buckets(before, RECONCILE_HISTOGRAM)
        )
        result.reconciles = int(hist[-1][1]) if hist else 0
        result.reconcile_p50_s = promtext.quantile(0.5, hist)
        result.reconcile_p99_s = promtext.quantile(0.99, hist)
        result.reconcile_errors = int(
            promtext.total(after, "controller_runtime_reconcile_errors_total")
            - promtext.total(before, "controller_runtime_reconcile_errors_total")
        )
        log(
            f"  operator converged in {result.operator_s:.1f}s "
            f"(children {result.operator_children_s:.1f}s), {result.reconciles} reconciles, "
            f"{result.operator_writes} writes"
        )

        if skip_idle:
            mem = proc_status(pid)
            result.peak_rss_mb, result.rss_after_mb = mem["VmHWM"] / 2**20, mem["VmRSS"] / 2**20
            return
        # Settle: every Pod created by the controller-manager, the operator's queue empty and
        # no write of the operator for a few seconds.
        settle_start = time.monotonic()
        deadline = settle_start + settle_timeout
        pods_ok = await wait_pods(api, OP_NS, expected.pods, settle_timeout)
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
        if retries[0]:
            result.notes.append(f"N={result.n}: {retries[0]} retried service applies in the operator phase")
    finally:
        for task in watches:
            task.cancel()
        for task in watches:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await api.close()
        await admin.close()
        cluster.stop_process("operator")


# --------------------------------------------------------------------------------------------
# One size, all sizes
# --------------------------------------------------------------------------------------------


async def _lower_bound_and_settle(
    bench: Bench, manifests: list[Obj], expected: Expected, args: Options, result: RunResult
) -> None:
    seconds, writes, retries = await lower_bound(bench, manifests, args.concurrency, args.workers)
    result.lower_bound_runs_s.append(seconds)
    result.lower_bound_s = min(result.lower_bound_runs_s)
    result.lower_bound_writes = writes
    result.lower_bound_retries += retries
    log(f"  lower bound: {seconds:.1f}s, {writes} writes")
    if not expected.pods:
        return
    log("  waiting for the controller-manager to create the lower bound's Pods")
    api = ApiHttp(bench.cluster.server, bench.cluster.admin_token)
    try:
        if not await wait_pods(api, manifests[0]["metadata"]["namespace"], expected.pods, args.settle_timeout):
            result.notes.append(f"N={result.n}: the lower bound's Pods were not all created before the operator phase")
        await asyncio.sleep(3.0)
    finally:
        await api.close()


@dataclass
class Options:
    sizes: list[int]
    concurrency: int = 16
    workers: int = 16
    quiet: float = 60.0
    settle_timeout: float = 600.0
    router_every: int = 10
    work_dir: Path = Path(".fusioninfer/bench")
    skip_lower_bound: bool = False  # development only: operator phase alone
    skip_idle: bool = False  # development only: stop after convergence
    profile: Path | None = None  # development only: run the operator under pyinstrument


def run_size(n: int, options: Options) -> RunResult:
    lb_manifests = [service_manifest(LB_NS, i, options.router_every) for i in range(n)]
    op_manifests = [service_manifest(OP_NS, i, options.router_every) for i in range(n)]
    log(f"N={n}: starting a fresh control plane")
    bench = start_cluster(options.work_dir.absolute() / f"n{n}")
    try:
        expected = expected_state(op_manifests, bench.capabilities)
        result = RunResult(
            n=n,
            services_with_router=sum(1 for m in op_manifests if len(m["spec"]["roles"]) > 1),
            children=len(expected.children),
            concurrency=options.concurrency,
            workers=options.workers,
        )
        if not options.skip_lower_bound:
            lb_expected = expected_state(lb_manifests, bench.capabilities)
            asyncio.run(_lower_bound_and_settle(bench, lb_manifests, lb_expected, options, result))
        log(f"N={n}: operator phase")
        asyncio.run(
            operator_phase(
                bench,
                op_manifests,
                expected,
                concurrency=options.concurrency,
                workers=options.workers,
                quiet=options.quiet,
                settle_timeout=options.settle_timeout,
                result=result,
                skip_idle=options.skip_idle,
                profile=options.profile,
            )
        )
        if not options.skip_lower_bound:
            # Again after the operator phase (the operator stopped; a fuller etcd): load from other
            # processes on the machine drifts, and the better of the two runs is the lower bound.
            log(f"N={n}: lower bound again")
            lb2 = [service_manifest(LB2_NS, i, options.router_every) for i in range(n)]
            asyncio.run(_lower_bound_and_settle(bench, lb2, Expected(frozenset(), frozenset(), 0), options, result))
        return result
    finally:
        bench.cluster.down()


def format_table(results: list[RunResult]) -> str:
    head = (
        "| N | children | lower bound (s) | operator (s) | ratio | reconciles | p50 (ms) | p99 (ms) "
        "| writes (lower bound / operator) | idle writes | peak RSS (MB) | operator CPU (s) |"
    )
    sep = "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"
    rows = [head, sep]
    for r in results:
        p50 = f"{r.reconcile_p50_s * 1000:.0f}" if r.reconcile_p50_s is not None else "-"
        p99 = f"{r.reconcile_p99_s * 1000:.0f}" if r.reconcile_p99_s is not None else "-"
        rows.append(
            f"| {r.n} | {r.children} | {r.lower_bound_s:.1f} | {r.operator_s:.1f} | {r.ratio:.2f}x | {r.reconciles} "
            f"| {p50} | {p99} | {r.lower_bound_writes} / {r.operator_writes} | {r.idle_writes} "
            f"| {r.peak_rss_mb:.0f} | {r.operator_cpu_convergence_s:.1f} |"
        )
    return "\n".join(rows)


def machine_notes() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m bench.convergence", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--n", type=int, nargs="+", default=[100, 500, 1000], help="numbers of InferenceServices")
    p.add_argument("--concurrency", type=int, default=16, help="parallel requests of the benchmark's clients")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the operator's --workers (default: --concurrency, the same parallelism)",
    )
    p.add_argument("--quiet", type=float, default=60.0, help="seconds of the idle window")
    p.add_argument("--settle-timeout", type=float, default=600.0)
    p.add_argument("--router-every", type=int, default=10, help="every k-th service has a router (0: none)")
    p.add_argument("--work-dir", type=Path, default=Path(".fusioninfer/bench"))
    p.add_argument("--skip-lower-bound", action="store_true", help="development: operator phase only")
    p.add_argument("--skip-idle", action="store_true", help="development: no settle/quiet window")
    p.add_argument("--profile-operator", type=Path, default=None, help="development: pyinstrument text report here")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md and docs/benchmarks.png")
    ns = p.parse_args(argv)
    options = Options(
        sizes=list(ns.n),
        concurrency=ns.concurrency,
        workers=ns.workers if ns.workers is not None else ns.concurrency,
        quiet=ns.quiet,
        settle_timeout=ns.settle_timeout,
        router_every=ns.router_every,
        work_dir=ns.work_dir,
        skip_lower_bound=ns.skip_lower_bound,
        skip_idle=ns.skip_idle,
        profile=ns.profile_operator,
    )
    return options, ns


def main(argv: Sequence[str] | None = None) -> int:
    options, ns = parse_args(argv)
    machine = machine_notes()
    results: list[RunResult] = []
    for n in options.sizes:
        result = run_size(n, options)
        results.append(result)
        print(format_table([result]).splitlines()[-1], flush=True)
    table = format_table(results)
    print()
    print(table)
    for r in results:
        if r.idle_writes:
            print(f"N={r.n}: idle writes by the operator: {r.idle_writes_by_kind}")
        for note in r.notes:
            print(f"note: {note}")
    payload = {
        "machine": machine,
        "options": {**asdict(options), "work_dir": str(options.work_dir)},
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
    }
    if ns.json is not None:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps(payload, indent=2))
    if ns.write_docs:
        from bench.report import write_docs

        write_docs(payload, table, REPO_ROOT / "docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
