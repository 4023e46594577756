"""Convergence benchmark: N InferenceServices applied at once, the operator against a lower bound.

For each N, every run of either side on a fresh local control plane of its own (real
kube-apiserver + etcd + controller-manager + scheduler built by `fusioninfer cluster build`, no
nodes: Pods stay Pending, which the benchmark does not need), so that no run inherits the
objects, Pods and controller-manager backlog of the runs before it:

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
5. (``--rounds`` minus one) more rounds of (1) and (2), convergence only, in namespaces of their own
   (``bench-lb2``, ``bench-op2``, ...): each side's time is the best of its interleaved runs.

Run: ``python -m bench.convergence --n 100 1000 2000 5000 --write-docs`` (``make bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.apiserver_profile import ApiserverProfile
from bench.lower_bound import lower_bound_run
from bench.operator_side import operator_phase
from bench.peer import probe as probe_peer
from bench.report import format_table, machine_notes
from bench.results import RunResult, log
from bench.setup import REPO_ROOT, Bench, lower_bound_ns, operator_ns, start_cluster, watching_lower_bound_ns
from bench.workload import expected_state, has_router, service_manifest


@dataclass
class Options:
    sizes: list[int]
    concurrency: int = 16
    workers: int = 16
    quiet: float = 60.0
    settle_timeout: float | None = None  # None: `default_settle_timeout(n)`
    router_every: int = 10
    work_dir: Path = Path(".fusioninfer/bench")
    skip_lower_bound: bool = False  # development only: operator phase alone
    skip_idle: bool = False  # development only: stop after convergence
    profile: Path | None = None  # development only: run the operator under pyinstrument
    edits: int = 50  # edits of one service per kind (replicas, image) after the idle window
    rounds: int = 3  # interleaved runs per side (lower bound, operator, lower bound, ...); the best counts
    lb_watching: bool = False  # diagnostic: each round also runs the lower bound with the operator's watches
    profile_apiserver: Path | None = None  # diagnostic: the apiserver's CPU profile of each side's first run
    profile_apiserver_seconds: int = 30


def default_settle_timeout(n: int) -> float:
    """Long enough for the controller-manager to create every Pod of `n` services at its default
    20 QPS (about 0.2 s per service: a ReplicaSet, its Pods, their Events, two status updates),
    with room: 600 s, or 0.4 s per service beyond that."""
    return max(600.0, 0.4 * n)


def run_size(n: int, options: Options) -> RunResult:
    result = RunResult(
        n=n,
        services_with_router=sum(1 for i in range(n) if has_router(i, options.router_every)),
        children=0,  # set by the first operator run, from the capabilities its cluster reports
        concurrency=options.concurrency,
        workers=options.workers,
    )
    shutil.rmtree(runs_dir(n, options), ignore_errors=True)
    # Without a lower bound there is nothing to interleave with: one (full) operator run.
    for round_ in range(1, 2 if options.skip_lower_bound else options.rounds + 1):
        _run_round(n, round_, options, result)
    return result


@contextlib.contextmanager
def fresh_cluster(n: int, namespace: str, options: Options) -> Iterator[Bench]:
    """A control plane of its own for one run: every run starts on an empty etcd with an idle
    controller-manager, whatever the previous run left behind (its Pods still being created,
    a fuller store, a scheduler retrying thousands of Pending Pods)."""
    log(f"N={n}: starting a fresh control plane for {namespace}")
    bench = start_cluster(
        options.work_dir.absolute() / f"n{n}", [namespace], profiling=options.profile_apiserver is not None
    )
    try:
        yield bench
    finally:
        # Keep the run's component logs (the operator's among them) before the state goes.
        bench.cluster.down(remove_state=False)
        with contextlib.suppress(OSError):
            shutil.copytree(bench.cluster.state_dir / "logs", runs_dir(n, options) / namespace, dirs_exist_ok=True)
        bench.cluster.down()


def runs_dir(n: int, options: Options) -> Path:
    """Where the logs of each run of size `n` are kept, one directory per run's namespace."""
    return options.work_dir.absolute() / f"n{n}" / "runs"


def _profile(options: Options, round_: int, name: str, n: int) -> ApiserverProfile | None:
    """The apiserver profile of a side's first run (`--profile-apiserver`), if asked for."""
    if options.profile_apiserver is None or round_ != 1:
        return None
    return ApiserverProfile(options.profile_apiserver, f"n{n}-{name}", options.profile_apiserver_seconds)


def _run_round(n: int, round_: int, options: Options, result: RunResult) -> None:
    """One lower-bound run, then one operator run, each on a fresh control plane.

    Rounds interleave the two sides in time, so that drift in the machine's load (other
    tenants) weighs on both alike; each side's figure is the best of its runs. The first
    operator run is the full one (idle window, edits); later ones converge only."""
    concurrency, workers = options.concurrency, options.workers
    if not options.skip_lower_bound:
        log(f"N={n}: lower bound, round {round_}/{options.rounds}")
        with fresh_cluster(n, lower_bound_ns(round_), options) as bench:
            lb = [service_manifest(lower_bound_ns(round_), i, options.router_every) for i in range(n)]
            profile = _profile(options, round_, "lower-bound", n)
            asyncio.run(lower_bound_run(bench, lb, result, concurrency=concurrency, workers=workers, profile=profile))
        if options.lb_watching:
            log(f"N={n}: lower bound with the operator's watches, round {round_}/{options.rounds}")
            with fresh_cluster(n, watching_lower_bound_ns(round_), options) as bench:
                lbw = [service_manifest(watching_lower_bound_ns(round_), i, options.router_every) for i in range(n)]
                profile = _profile(options, round_, "lower-bound-watching", n)
                asyncio.run(
                    lower_bound_run(
                        bench, lbw, result, concurrency=concurrency, workers=workers, watching=True, profile=profile
                    )
                )
    log(f"N={n}: operator, round {round_}/{options.rounds}")
    first = round_ == 1
    target = (
        result if first else RunResult(n=n, services_with_router=0, children=0, concurrency=0, workers=options.workers)
    )
    with fresh_cluster(n, operator_ns(round_), options) as bench:
        manifests = [service_manifest(operator_ns(round_), i, options.router_every) for i in range(n)]
        expected = expected_state(manifests, bench.capabilities)
        if first:
            result.children = len(expected.children)
        asyncio.run(
            operator_phase(
                bench,
                manifests,
                expected,
                concurrency=concurrency,
                workers=workers,
                quiet=options.quiet if first else 0.0,
                settle_timeout=options.settle_timeout or default_settle_timeout(n),
                result=target,
                skip_idle=options.skip_idle or not first,
                profile=options.profile if first else None,
                edits=options.edits if first else 0,
                apiserver_profile=_profile(options, round_, "operator", n),
            )
        )
    if not first:
        result.take_convergence_from(target)
        result.notes += target.notes


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
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=None,
        help="longest wait for the operator's Pods and a quiet operator before the idle window "
        "(default: 600 s or 0.4 s per service, whichever is longer)",
    )
    p.add_argument("--router-every", type=int, default=10, help="every k-th service has a router (0: none)")
    p.add_argument("--work-dir", type=Path, default=Path(".fusioninfer/bench"))
    p.add_argument("--skip-lower-bound", action="store_true", help="development: operator phase only")
    p.add_argument("--skip-idle", action="store_true", help="development: no settle/quiet window")
    p.add_argument("--profile-operator", type=Path, default=None, help="development: pyinstrument text report here")
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved runs per side (>= 1); each side's best run counts"
    )
    p.add_argument(
        "--lb-watching",
        action="store_true",
        help="diagnostic: each round also runs the lower bound with the operator's watches open",
    )
    p.add_argument(
        "--profile-apiserver",
        type=Path,
        default=None,
        help="diagnostic: the kube-apiserver's CPU profile of each side's first run in this directory",
    )
    p.add_argument(
        "--profile-apiserver-seconds",
        type=int,
        default=30,
        help="length of each apiserver profile from the run's clock start (cover the slower side)",
    )
    p.add_argument("--edits", type=int, default=50, help="edits per kind for the edit latency (0: none)")
    p.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md, .png and .json")
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
        rounds=ns.rounds,
        lb_watching=ns.lb_watching,
        profile_apiserver=ns.profile_apiserver,
        profile_apiserver_seconds=ns.profile_apiserver_seconds,
    )
    if options.rounds < 1:
        p.error("--rounds must be at least 1")
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
        "options": {
            **asdict(options),
            "work_dir": str(options.work_dir),
            "profile": str(options.profile or ""),
            "profile_apiserver": str(options.profile_apiserver or ""),
        },
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
