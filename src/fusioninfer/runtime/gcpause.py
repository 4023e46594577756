"""CPython's garbage-collector pauses as a histogram (``fusioninfer_gc_pause_seconds``).

Why: the informer caches hold every watched object, and a full collection walks every container
object in them; at a few thousand services that is tens to hundreds of milliseconds in which
nothing else runs on the event loop (no reconcile, no watch event read). Such a pause is the
suspect for the edit-latency tail at N=5000 in docs/benchmarks.md; with this histogram it can
be seen on a dashboard, per generation, instead of guessed.
"""

from __future__ import annotations

import gc
import time
from types import TracebackType
from typing import Any

from prometheus_client import Histogram


class GcPauses:
    """While entered, every collection's duration is observed in `histogram` (label
    ``generation``: "0", "1" or "2", the oldest generation collected)."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._started: float | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            elapsed, self._started = time.perf_counter() - self._started, None
            self._histogram.labels(generation=str(info.get("generation", ""))).observe(elapsed)

    def __enter__(self) -> GcPauses:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
