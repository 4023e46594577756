"""`fusioninfer demo` end to end, as `make demo` runs it: its own cluster, every example Ready,
three times in a row from a clean state.

Runs the real command in a subprocess (no TTY), with its own state dir and `--teardown`, and
checks the exit code, the Ready output (including the multi-node, gang-scheduled and routed
services that need the real LWS controller, the local gateway and the stand-in Volcano), the
seed's chat completion answered through the Gateway, and that nothing is left running.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusioninfer_dev.localcluster.build import ensure_cluster_binaries

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


DEMO_RUNS = 3  # the demo must be reliable, not lucky: node placement must not decide the outcome


@pytest.mark.parametrize("run", range(1, DEMO_RUNS + 1))
def test_demo_runs_to_ready_and_tears_down(tmp_path: Path, run: int) -> None:
    """Each run starts from a clean state (its own state dir) on the same machine."""
    ensure_cluster_binaries()
    state_dir = tmp_path / f"demo-{run}"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fusioninfer.cli",
            "demo",
            "--state-dir",
            str(state_dir),
            "--teardown",
            "--timeout",
            "240",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "every InferenceService is Ready" in output
    for service in ("qwen-inference", "qwen-pd-nixl", "deepseek-r1"):
        assert f"InferenceService fusioninfer-demo/{service} — Running" in output, output[-5000:]
    assert "LeaderWorkerSet deepseek-r1-inference 2/2 groups ready" in output
    assert "PodGroup qwen-pd-nixl Running" in output
    assert "HTTPRoute qwen-pd-nixl-route accepted by Gateway inference-gateway" in output
    # The seed README's last step, through Envoy and the real GIE picker to a model server.
    assert "-> 200, served by InferenceService qwen-inference, pod qwen-inference-inference-" in output, output[-5000:]
    assert "'Hello, how are you?'" in output
    assert 'curl -X POST "http://${GATEWAY_IP}/v1/chat/completions"' in output
    # The P/D service serves the monolithic one's model on the same Gateway: told, not shadowed.
    assert "qwen-pd-nixl: not routable: ModelNameConflict" in output
    assert "torn down (--teardown)" in output
    assert not (state_dir / "state.json").exists()
