"""The real llm-d P/D sidecar runs on the args the operator renders for decode pods.

The sidecar (`cmd/pd-sidecar` of github.com/llm-d/llm-d-inference-scheduler v0.7.1, built from
its Go module) parses its flags with pflag, exits on an unknown flag or connector, and warns on a
deprecated one. Each rendered decode pod's sidecar container is started with its args (only the
two port values replaced by free ports: it binds every address, and other tests' servers may
hold 8000), in front of a stand-in engine on its `--vllm-port`; it must start without a warning,
and a request without the picker's prefill header must reach the engine through it (the
decode-only path every P/D request falls back to).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.wrappers import pd_service

from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.builders.pd import SIDECAR_NAME
from fusioninfer_dev.localcluster.build import LLMD_PD_SIDECAR, ensure_component
from fusioninfer_dev.localcluster.components import pick_free_ports

pytestmark = pytest.mark.integration

VLLM = {
    "name": "vllm",
    "image": "vllm/vllm-openai:v0.11.0",
    "args": [
        "--model",
        "Qwen/Qwen3-8B",
        "--kv-transfer-config",
        '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
    ],
}
SGLANG = {
    "name": "sglang",
    "image": "lmsysorg/sglang:v0.5.3",
    "command": ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--enable-metrics"],
}


def rendered_sidecar(engine: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sidecar container, engine container) of the decode pod the operator renders."""
    objects = build(
        parse(pd_service(engine, engine)), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))
    ).objects
    decode = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "svc-decode")
    spec = decode["spec"]["template"]["spec"]
    (sidecar,) = [c for c in spec.get("initContainers", []) if c["name"] == SIDECAR_NAME]
    (engine_container,) = spec["containers"]
    return sidecar, engine_container


def with_ports(args: list[str], port: int, vllm_port: int) -> list[str]:
    values = {"--port": str(port), "--vllm-port": str(vllm_port)}
    return [f"{a.split('=', 1)[0]}={values[a.split('=', 1)[0]]}" if a.split("=", 1)[0] in values else a for a in args]


@pytest.fixture(scope="module")
def sidecar_binary() -> Path:
    return ensure_component(LLMD_PD_SIDECAR) / "pd-sidecar"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for proc in running:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def start(argv: list[str], log: Path, running: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    running.append(proc)
    return proc


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            return httpx.get(url, timeout=2, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not served in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("engine", [VLLM, SGLANG], ids=["vllm-nixl", "sglang"])
def test_the_real_sidecar_runs_on_the_rendered_args_and_reaches_its_engine(
    engine: dict[str, Any], sidecar_binary: Path, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    sidecar, engine_container = rendered_sidecar(engine)
    assert sidecar["image"] == "ghcr.io/llm-d/llm-d-routing-sidecar:v0.7.1"
    port, vllm_port = pick_free_ports(2)
    engine_argv = [*engine_container.get("command", []), *engine_container.get("args", [])]
    engine_argv = [str(vllm_port) if a in ("8200",) else a for a in engine_argv]  # its rewritten --port
    server_log = tmp_path / "engine.log"
    server = start(
        [sys.executable, "-m", "fusioninfer_dev.localcluster.modelserver", "--bind=127.0.0.1", "--pod=decode-0",
         f"--image={engine['image']}", "--", *engine_argv],
        server_log,
        processes,
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{vllm_port}/health", server, server_log)

    log = tmp_path / "sidecar.log"
    proc = start([str(sidecar_binary), *with_ports(sidecar["args"], port, vllm_port)], log, processes)
    models = wait_http(f"http://127.0.0.1:{port}/v1/models", proc, log)

    assert models.status_code == 200, models.text
    body = {"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "through the sidecar"}]}
    reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30, trust_env=False)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "through the sidecar"
    assert reply.headers["x-inference-pod"] == "decode-0", "the engine behind the sidecar answered"
    text = log.read_text()
    assert "deprecated" not in text.lower(), text[-2000:]
    assert proc.poll() is None


def test_the_sidecar_refuses_what_it_does_not_know(
    sidecar_binary: Path, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The check above can fail: an unknown connector or flag makes the real sidecar stop instead
    of serving (v0.7.1 exits with status 0 on an invalid connector, so the log says why)."""
    port, vllm_port = pick_free_ports(2)
    for i, (bad, why) in enumerate(
        [("--kv-connector=bogus", "Invalid configuration"), ("--no-such-flag=1", "unknown flag")]
    ):
        log = tmp_path / f"bad-{i}.log"
        proc = start([str(sidecar_binary), f"--port={port}", f"--vllm-port={vllm_port}", bad], log, processes)
        proc.wait(timeout=30)
        assert why in log.read_text(), log.read_text()
