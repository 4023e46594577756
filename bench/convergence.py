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
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.lower_bound import lower_bound_and_settle
from bench.operator_side import operator_phase
from bench.peer import probe as probe_peer
from bench.report import format_table, machine_notes
from bench.results import RunResult, log
from bench.setup import (
    LB2_NS,
    LB_NS,
    OP2_NS,
    OP_NS,
    REPO_ROOT,
    start_cluster,
)
from bench.workload import expected_state, service_manifest


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
    edits: int = 50  # edits of one service per kind (replicas, image) after the idle window


def _pool_args(options: Options) -> dict[str, Any]:
    return {"concurrency": options.concurrency, "workers": options.workers, "settle_timeout": options.settle_timeout}


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
            asyncio.run(lower_bound_and_settle(bench, lb_manifests, lb_expected, result, **_pool_args(options)))
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
                edits=options.edits,
            )
        )
        if not options.skip_lower_bound:
            # Again after the operator phase (the operator stopped; a fuller etcd): load from other
            # processes on the machine drifts, and the better of the two runs is the lower bound.
            log(f"N={n}: lower bound again")
            lb2 = [service_manifest(LB2_NS, i, options.router_every) for i in range(n)]
            lb2_expected = expected_state(lb2, bench.capabilities)
            asyncio.run(lower_bound_and_settle(bench, lb2, lb2_expected, result, **_pool_args(options)))
            # And the operator again, convergence only, so that each side is the better of two
            # runs and drift in the machine's load weighs on both alike.
            log(f"N={n}: operator again (convergence only)")
            op2 = [service_manifest(OP2_NS, i, options.router_every) for i in range(n)]
            again = RunResult(n=n, services_with_router=0, children=0, concurrency=0, workers=options.workers)
            asyncio.run(
                operator_phase(
                    bench,
                    op2,
                    expected_state(op2, bench.capabilities),
                    concurrency=options.concurrency,
                    workers=options.workers,
                    quiet=0.0,
                    settle_timeout=options.settle_timeout,
                    result=again,
                    skip_idle=True,
                )
            )
            result.take_convergence_from(again)
            result.notes += again.notes
        return result
    finally:
        bench.cluster.down()


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m bench.convergence", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--n", type=int, nargs="+", default=[100, 1000, 2000], help="numbers of InferenceServices")
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
    p.add_argument("--edits", type=int, default=50, help="edits per kind for the edit latency (0: none)")
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
        edits=ns.edits,
    )
    return options, ns


def main(argv: Sequence[str] | None = None) -> int:
    options, ns = parse_args(argv)
    machine = machine_notes()
    peer = probe_peer()
    log(
        f"the original Go operator ({peer.module}): "
        + (
            f"{peer.version} is served, but no driver for it is written (it never was servable where this "
            "benchmark was written); running without it"
            if peer.available
            else f"not available, running without it ({peer.reason})"
        )
    )
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
        "options": {**asdict(options), "work_dir": str(options.work_dir), "profile": str(options.profile or "")},
        "results": [{**asdict(r), "ratio": r.ratio} for r in results],
        "peer": asdict(peer),
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
