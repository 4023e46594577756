"""The benchmark's pure parts: percentiles, the edits it makes, the targets it reports, and how
it reads the Go module proxy's refusal of the original operator."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from bench.edit_latency import IMAGES, edited, percentile, worker_container
from bench.peer import first_error_line
from bench.report import TARGET_EDIT_P99_MS, TARGET_RATIO, target_checks
from bench.workload import service_manifest
from hypothesis import given


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3
    assert percentile([], 0.5) is None


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1), st.floats(min_value=0, max_value=1))
def test_a_percentile_is_one_of_the_values_and_grows_with_q(values: list[float], q: float) -> None:
    assert percentile(values, q) in values
    assert percentile(values, q) <= percentile(values, 1.0)  # type: ignore[operator]


def deployment_of(manifest: dict[str, Any]) -> dict[str, Any]:
    worker = manifest["spec"]["roles"][0]
    return {"spec": {"replicas": worker["replicas"], "template": {"spec": worker["template"]["spec"]}}}


@pytest.mark.parametrize("what", ["replicas", "image"])
def test_every_edit_changes_what_the_deployment_must_show(what: str) -> None:
    """Each edit is a real change, and its check passes on a Deployment made from the edited
    manifest and fails on one made from the manifest before the edit."""
    manifest = service_manifest("ns", 1, router_every=10)
    before = manifest
    for index in range(4):
        after, shows = edited(before, what, index)
        assert shows(deployment_of(after))
        assert not shows(deployment_of(before)), f"edit {index} changed nothing the check sees"
        before = after
    assert worker_container(deployment_of(manifest))["image"] == IMAGES[0], "the input is not modified"
    assert manifest["spec"]["roles"][0]["replicas"] == 1


def test_the_proxys_refusal_is_reported_in_one_line() -> None:
    err = (
        "github.com/fusioninfer/fusioninfer@latest: reading https://proxy.golang.org/github.com/fusioninfer/"
        "fusioninfer/@v/list: 403 Forbidden\n\tserver response: This module version is not available."
    )
    assert first_error_line(err) == "403 Forbidden: This module version is not available."


def result(n: int, ratio: float, rss: float = 90.0, p99: float | None = 50.0, idle: int = 0) -> dict[str, object]:
    edit = {"edits": 50, "timeouts": 0, "deployment_p99_ms": p99, "observed_p99_ms": p99}
    return {"n": n, "ratio": ratio, "peak_rss_mb": rss, "idle_writes": idle, "edit_latency": {"replicas": edit}}


def test_targets_are_checked_where_the_run_can_speak_to_them() -> None:
    checks = {what: ok for what, ok, _ in target_checks([result(100, 2.0), result(1000, 1.1), result(2000, 1.3)])}
    assert checks[f"convergence within {TARGET_RATIO}x of the lower bound at N=1000"]
    assert not checks[f"convergence within {TARGET_RATIO}x of the lower bound at N=2000"]
    assert not any(what.endswith("N=100") for what in checks), "N=100 has no ratio target"
    assert checks[f"replicas edit p99 under {TARGET_EDIT_P99_MS:.0f} ms at N=2000"]
    slow = {w: ok for w, ok, _ in target_checks([result(2000, 1.2, p99=250.0, rss=200.0, idle=1)])}
    assert not any(slow.values()), slow
