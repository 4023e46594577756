"""The benchmark's pure parts: percentiles, the edits it makes, the targets it reports, and how
it reads the Go module proxy's refusal of the original operator."""

from __future__ import annotations

from dataclasses import asdict
from itertools import pairwise
from typing import Any

import hypothesis.strategies as st
import pytest
from bench import promtext
from bench.convergence import default_settle_timeout, parse_args
from bench.edit_latency import IMAGES, EditLatency, edited, percentile, summary, worker_container
from bench.peer import first_error_line
from bench.report import (
    TARGET_EDIT_P99_MS,
    TARGET_RATIO,
    TARGET_RSS_MB,
    queue_wait_ms,
    results_section,
    target_checks,
)
from bench.results import RunResult
from bench.setup import lower_bound_ns, operator_ns, watching_lower_bound_ns
from bench.workload import has_router, service_manifest
from hypothesis import given

from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.controller.route_conflicts import conflicts, model_values


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


def test_the_workloads_routes_share_a_gateway_without_claiming_one_model_twice() -> None:
    """The benchmark times a sane fleet: its router services all sit on one Gateway, and the
    operator's own conflict check finds no model name claimed by two of them."""
    routes = []
    for index in range(0, 50, 10):
        objects = build(parse(service_manifest("ns", index, router_every=10)), BuildOptions(Capabilities())).objects
        route = next(o for o in objects if o["kind"] == "HTTPRoute")
        route["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{index:02d}Z"
        routes.append(route)
    assert all(model_values(route) for route in routes), "a route that matches no model name checks nothing"
    assert len({ref["name"] for r in routes for ref in r["spec"]["parentRefs"]}) == 1
    assert not any(conflicts(route, routes) for route in routes)


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
    assert checks[f"replicas edit p99 under {TARGET_EDIT_P99_MS:.0f} ms at every N"]
    slow = {w: ok for w, ok, _ in target_checks([result(2000, 1.2, p99=250.0, rss=200.0, idle=1)])}
    assert not any(slow.values()), slow


def test_memory_is_judged_at_n_2000_and_edits_at_every_size() -> None:
    # N=5000 is measured when the machine holds it; the memory target is the issue's, at N=2000.
    runs = [result(1000, 1.1, p99=230.0), result(2000, 1.1, rss=140.0), result(5000, 1.1, rss=260.0)]
    checks = {what: (ok, value) for what, ok, value in target_checks(runs)}
    assert checks[f"peak RSS under {TARGET_RSS_MB:.0f} MB at N=2000"] == (True, "140 MB")
    assert checks[f"replicas edit p99 under {TARGET_EDIT_P99_MS:.0f} ms at every N"] == (False, "230 ms at N=1000")
    alone = {what for what, _, _ in target_checks([result(5000, 1.1, rss=260.0)])}
    assert f"peak RSS under {TARGET_RSS_MB:.0f} MB at N=5000" in alone, "without N=2000, the largest N"


def test_each_run_has_a_namespace_of_its_own() -> None:
    # Each run's logs are kept under its namespace's name (`runs_dir`): one name per run.
    names = [ns for r in range(1, 6) for ns in (lower_bound_ns(r), operator_ns(r), watching_lower_bound_ns(r))]
    assert len(set(names)) == len(names)
    assert (lower_bound_ns(1), operator_ns(1)) == ("bench-lb", "bench-op"), "the names docs/benchmarks.md uses"


@pytest.mark.parametrize(("n", "seconds"), [(5, 600.0), (1000, 600.0), (2000, 800.0), (5000, 2000.0)])
def test_the_settle_wait_grows_with_the_services_the_controller_manager_must_serve(n: int, seconds: float) -> None:
    # At N=2000 the controller-manager took 372 s to create every Pod (2026-12-04); 600 s
    # would not cover N=5000.
    assert default_settle_timeout(n) == seconds
    assert parse_args(["--settle-timeout", "120"])[0].settle_timeout == 120


def test_fewer_than_one_round_is_refused() -> None:
    assert parse_args(["--rounds", "3"])[0].rounds == 3
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])


def test_the_best_of_the_interleaved_operator_runs_describes_the_row() -> None:
    full = RunResult(n=10, services_with_router=1, children=18, concurrency=4, workers=4, operator_s=30.0)
    full.operator_runs_s, full.reconciles, full.edit_latency = [30.0], 100, {"replicas": {"edits": 50}}
    for seconds, reconciles in ((25.0, 90), (28.0, 95)):
        later = RunResult(n=10, services_with_router=0, children=0, concurrency=0, workers=4, operator_s=seconds)
        later.operator_runs_s, later.reconciles = [seconds], reconciles
        full.take_convergence_from(later)
    assert full.operator_runs_s == [30.0, 25.0, 28.0]
    assert (full.operator_s, full.reconciles) == (25.0, 90), "the row's figures come from one run, the best"
    assert full.edit_latency == {"replicas": {"edits": 50}}, "edits are measured in the full run only"


def test_a_queue_wait_beyond_the_top_bucket_is_not_reported_as_a_measurement() -> None:
    assert queue_wait_ms(10.0) == ">= 10000"
    assert queue_wait_ms(2.5) == "1000-10000"
    assert queue_wait_ms(0.554) == "100-1000"
    assert queue_wait_ms(0.1) == "10-100", "a bucket holds its upper bound"
    assert queue_wait_ms(None) == "-"


def full_result(n: int) -> dict[str, Any]:
    run = RunResult(n=n, services_with_router=n // 10, children=n * 18 // 10, concurrency=16, workers=16)
    run.lower_bound_s, run.operator_s, run.lower_bound_runs_s, run.operator_runs_s = 20.0, 22.0, [20.0], [22.0]
    latency = {"deployment_p50_ms": 40.0, "deployment_p99_ms": 90.0, "observed_p50_ms": 50.0, "observed_p99_ms": 99.0}
    run.edit_latency = {"replicas": {"edits": 50, "timeouts": 0, **latency}}
    run.edit_gc_pauses = {"replicas": {"2": {"collections": 1, "total_ms": 180.0}}}
    run.gc_pauses = {"0": {"collections": 900, "total_ms": 40.0}, "2": {"collections": 3, "total_ms": 250.0}}
    run.reconcile_triggers, run.memo_lookups = {"InferenceService/bench-op add": n}, {"hit": n, "miss": n}
    run.lower_bound_watching_runs_s, run.cpu_lower_bound_watching = [21.0], {"kube-apiserver": 9.5}
    return {**asdict(run), "ratio": run.ratio}


def test_every_generated_table_has_as_many_delimiter_cells_as_header_cells() -> None:
    """GitHub renders a table only when its delimiter row matches its header."""
    payload = {"results": [full_result(1000)], "options": {"quiet": 60, "concurrency": 16, "workers": 16}}
    payload["machine"] = {"date": "2026-12-03 19:00 UTC"}
    payload["peer"] = {"module": "m", "available": False, "reason": "403 Forbidden: refused."}
    lines = results_section(payload, "| a |\n|---|").splitlines()
    for head, delimiter in pairwise(lines):
        if delimiter.startswith("|---"):
            assert head.count("|") == delimiter.count("|"), head
    assert "refused.." not in "\n".join(lines)
    assert any(line.startswith("- N=1000: reconciles woken by InferenceService/bench-op add 1000;") for line in lines)
    assert any(line.endswith("GC: gen0 900 (40 ms), gen2 3 (250 ms)") for line in lines)
    assert any(line.startswith("| 1000 | replicas |") and "| gen2 1 (180 ms) |" in line for line in lines)
    assert any(line.startswith("- N=1000: runs 21.0 s; the operator's best 22.0 s is 1.05x") for line in lines)


def test_a_counter_delta_names_what_grew_and_only_that() -> None:
    def scrape(values: dict[tuple[str, str], float]) -> list[promtext.Sample]:
        return [promtext.Sample("c_total", {"resource": r, "event": e}, v) for (r, e), v in values.items()]

    before = scrape({("pods", "update"): 5, ("deploy", "add"): 1})
    after = scrape({("pods", "update"): 6, ("deploy", "add"): 1, ("svc", "add"): 3})
    grown = promtext.counter_delta(after, before, "c_total", ("resource", "event"))
    assert grown == {"svc add": 3, "pods update": 1}
    assert list(grown) == ["svc add", "pods update"], "largest first"


def test_a_histograms_growth_is_counted_and_summed_per_label() -> None:
    def scrape(count: dict[str, float], total: dict[str, float]) -> list[promtext.Sample]:
        return [promtext.Sample("h_count", {"generation": g}, v) for g, v in count.items()] + [
            promtext.Sample("h_sum", {"generation": g}, v) for g, v in total.items()
        ]

    before = scrape({"0": 10, "2": 1}, {"0": 0.01, "2": 0.1})
    after = scrape({"0": 14, "1": 2, "2": 1}, {"0": 0.02, "1": 0.004, "2": 0.1})
    grown = promtext.histogram_growth(after, before, "h", "generation")
    assert set(grown) == {"0", "1"}, "a generation that collected nothing in between is left out"
    assert grown["0"][0] == 4
    assert grown["0"][1] == pytest.approx(0.01)
    assert grown["1"] == (2, pytest.approx(0.004))


def test_the_slowest_edit_is_reported_with_its_own_apply_round_trip() -> None:
    measured = EditLatency("replicas", [0.01, 0.2, 0.01], [0.03, 0.25, 0.02], [0.04, 0.3, 0.03])
    out = summary(measured)
    assert (out["slowest_edit"], out["slowest_applied_ms"], out["slowest_deployment_ms"]) == (1, 200.0, 250.0)
    assert out["slowest_observed_ms"] == 300.0
    assert out["applied_p50_ms"] == 10.0
    assert "slowest_edit" not in summary(EditLatency("image")), "no edit, no slowest"


def test_a_result_survives_the_results_json() -> None:
    # `python -m bench.report` re-renders the docs from it: nothing may be lost on the way.
    run = RunResult(n=5, services_with_router=1, children=13, concurrency=16, workers=16, lower_bound_s=1.0)
    run.operator_runs_s, run.edit_latency = [1.2, 1.1], {"replicas": {"edits": 3, "timeouts": 0}}
    assert RunResult.from_json({**asdict(run), "ratio": run.ratio}) == run


@pytest.mark.parametrize("router_every", [0, 1, 10])
def test_the_services_with_a_router_are_the_ones_counted(router_every: int) -> None:
    for index in range(25):
        roles = service_manifest("ns", index, router_every)["spec"]["roles"]
        assert (len(roles) > 1) == has_router(index, router_every), (index, roles)
