"""One size's measurements (`RunResult`) and the progress log."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, fields
from typing import Any


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
    # `--lb-watching` (diagnostic): the lower bound with the operator's informers running
    lower_bound_watching_runs_s: list[float] = field(default_factory=list)
    cpu_lower_bound_watching: dict[str, float] = field(default_factory=dict)
    lower_bound_retries: int = 0
    operator_s: float = 0.0  # the better of the operator's two runs, like the lower bound
    operator_runs_s: list[float] = field(default_factory=list)
    operator_children_s: float = 0.0
    operator_writes: int = 0
    operator_writes_by_kind: dict[str, int] = field(default_factory=dict)
    reconciles: int = 0
    reconcile_errors: int = 0
    reconcile_p50_s: float | None = None
    reconcile_p99_s: float | None = None
    # when the benchmark's last service apply returned, and how long reconciles waited for a
    # worker (workqueue_queue_duration_seconds): tells a starved queue from a saturated one
    operator_submitted_s: float = 0.0
    queue_wait_p50_s: float | None = None
    queue_wait_p99_s: float | None = None
    # "<informer> <add|update|delete>" -> changes delivered (what the apiserver streamed), and
    # -> those that made a service pending (each cost one reconcile), during convergence
    informer_events: dict[str, int] = field(default_factory=dict)
    reconcile_triggers: dict[str, int] = field(default_factory=dict)
    memo_lookups: dict[str, int] = field(default_factory=dict)  # hit / changed / miss
    # generation -> {"collections", "total_ms"}: the operator's garbage-collector pauses
    # (fusioninfer_gc_pause_seconds) during convergence, and per kind of edit during the edits
    gc_pauses: dict[str, dict[str, float]] = field(default_factory=dict)
    edit_gc_pauses: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
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
    # kube-apiserver + etcd CPU while each side converged (the lower bound's best run), and the
    # lower bound's own client CPU (the benchmark process during its run)
    apiserver_cpu_lower_bound_s: float = 0.0
    apiserver_cpu_operator_s: float = 0.0
    lower_bound_client_cpu_s: float = 0.0
    # CPU seconds by process (and the whole machine) while each side converged (`cpu_snapshot`)
    cpu_lower_bound: dict[str, float] = field(default_factory=dict)
    cpu_operator: dict[str, float] = field(default_factory=dict)
    # what -> {"p50_ms", "p99_ms"} for edit -> Deployment and edit -> observedGeneration, "edits", "timeouts"
    edit_latency: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """A result as `asdict` wrote it into the results JSON (extra keys, e.g. ``ratio``, ignored)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def take_convergence_from(self, other: RunResult) -> None:
        """Count `other`, a later convergence-only run of the operator: its time joins the runs,
        and if it was the faster one, its convergence figures replace these (so that a row of
        the table describes one run); the idle window, RSS and edits stay from the full run."""
        self.operator_runs_s += other.operator_runs_s
        if other.operator_s >= self.operator_s:
            return
        for name in CONVERGENCE_FIELDS:
            setattr(self, name, getattr(other, name))

    @property
    def ratio(self) -> float:
        return self.operator_s / self.lower_bound_s if self.lower_bound_s else float("nan")


CONVERGENCE_FIELDS = (
    "operator_s",
    "operator_children_s",
    "operator_submitted_s",
    "operator_writes",
    "operator_writes_by_kind",
    "reconciles",
    "reconcile_errors",
    "reconcile_p50_s",
    "reconcile_p99_s",
    "queue_wait_p50_s",
    "queue_wait_p99_s",
    "informer_events",
    "reconcile_triggers",
    "memo_lookups",
    "gc_pauses",
    "operator_cpu_convergence_s",
    "apiserver_cpu_operator_s",
    "cpu_operator",
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
