"""`GcPauses`: every garbage collection while it is entered lands in the histogram, by
generation, and none after it is left."""

from __future__ import annotations

import gc

from fusioninfer.runtime.gcpause import GcPauses
from fusioninfer.runtime.metrics import RuntimeMetrics


def _count(metrics: RuntimeMetrics, generation: str) -> float:
    value = metrics.registry.get_sample_value("fusioninfer_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_a_full_collection_is_observed_as_generation_2_and_nothing_after_exit() -> None:
    metrics = RuntimeMetrics()
    pauses = GcPauses(metrics.gc_pause_seconds)
    with pauses:
        gc.collect(2)
        assert _count(metrics, "2") >= 1
        assert (metrics.registry.get_sample_value("fusioninfer_gc_pause_seconds_sum", {"generation": "2"}) or 0) > 0
        gc.collect(0)
        assert _count(metrics, "0") >= 1
    before = _count(metrics, "2")
    gc.collect(2)
    assert _count(metrics, "2") == before, "left: no callback remains"
    assert pauses._on_gc not in gc.callbacks
