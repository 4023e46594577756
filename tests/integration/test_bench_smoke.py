"""The convergence benchmark (`bench/convergence.py`) still runs end to end: N=5, a short quiet
window, on local control planes of its own, one per run (it needs an audit log, so it cannot
share the session's).
Guards the benchmark against bit rot and checks the one target that does not depend on the
machine's speed: an idle operator writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusioninfer_dev.localcluster.build import ensure_cluster_binaries

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_benchmark_runs_and_the_idle_operator_writes_nothing(tmp_path: Path) -> None:
    ensure_cluster_binaries()
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.convergence",
            "--n",
            "5",
            "--quiet",
            "5",
            "--settle-timeout",
            "120",
            "--work-dir",
            str(tmp_path / "work"),
            "--edits",
            "3",
            "--rounds",
            "2",
            "--lb-watching",
            "--profile-apiserver",
            str(tmp_path / "profiles"),
            "--profile-apiserver-seconds",
            "2",
            "--json",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    (result,) = json.loads(out.read_text())["results"]
    assert result["n"] == 5
    assert result["children"] == 5 + 8  # svc-00000 has a router: 9 children; the other four 1 each
    assert result["lower_bound_s"] > 0
    assert result["operator_s"] > 0
    assert result["reconciles"] >= 5
    assert result["settled"], result["notes"]
    assert result["idle_writes"] == 0, result["idle_writes_by_kind"]
    assert 0 < result["peak_rss_mb"] < 200
    # CPU is accounted on both sides: the shared apiserver+etcd and each side's own client.
    for field in ("apiserver_cpu_lower_bound_s", "apiserver_cpu_operator_s", "lower_bound_client_cpu_s"):
        assert result[field] > 0, (field, result[field])
    assert "| 5 |" in proc.stdout  # the table
    # What woke each reconcile is told: at least every service's creation, seen by its informer.
    triggers = result["reconcile_triggers"]  # of the best round's run: its namespace is in the informer's name
    created = sum(
        n for what, n in triggers.items() if what.startswith("InferenceService/bench-op") and what.endswith(" add")
    )
    assert created >= 5, triggers
    assert result["memo_lookups"].get("miss", 0) >= 5, result["memo_lookups"]
    assert len(result["lower_bound_watching_runs_s"]) == 2
    assert min(result["lower_bound_watching_runs_s"]) > 0
    for what in ("replicas", "image"):
        edits = result["edit_latency"][what]
        assert (edits["edits"], edits["timeouts"]) == (3, 0), edits
        assert 0 < edits["deployment_p50_ms"] <= edits["observed_p99_ms"] or edits["observed_p50_ms"] > 0
        # The tail's breakdown: the edit's own apply comes before the Deployment can show it,
        # and the operator's reconciles during the edits were read from its metrics.
        assert 0 < edits["slowest_applied_ms"] <= edits["slowest_deployment_ms"], edits
        assert edits["reconciles"] >= 3, edits
        assert what in result["edit_gc_pauses"], result["edit_gc_pauses"]
    assert result["gc_pauses"].get("0", {}).get("collections", 0) > 0, "the operator's GC pauses are read"
    payload = json.loads(out.read_text())
    assert payload["peer"]["module"] == "github.com/fusioninfer/fusioninfer"
    assert payload["peer"]["available"] or payload["peer"]["reason"], "an unavailable peer says why"
    # Each side's first run was profiled on its own control plane, and `go tool pprof` read it.
    for side in ("lower-bound", "lower-bound-watching", "operator"):
        assert (tmp_path / "profiles" / f"n5-{side}.pb.gz").stat().st_size > 0, side
        top = (tmp_path / "profiles" / f"n5-{side}.top.txt").read_text()
        assert "File: kube-apiserver" in top, top[-2000:]
        assert "flat%" in top, top[-2000:]
    # Every run's component logs outlive its control plane, the operator's among them.
    runs = tmp_path / "work" / "n5" / "runs"
    assert {p.name for p in runs.iterdir()} == {
        "bench-lb",
        "bench-lbw1",
        "bench-op",
        "bench-lb2",
        "bench-lbw2",
        "bench-op2",
    }
    assert "reconcil" in (runs / "bench-op" / "operator.log").read_text()
    assert (runs / "bench-lb" / "kube-apiserver.log").stat().st_size > 0
