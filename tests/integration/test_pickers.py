"""The real GIE endpoint picker loads every EndpointPickerConfig the operator renders for it.

The picker validates its config when it starts and exits on an unknown plugin type, a bad
profile handler or a dangling reference. So each rendered router whose image is the GIE picker
(v1.2.1, built from its Go module) is started here as the operator's Deployment would run it:
the rendered args and config file, against the session cluster, its InferencePool applied
first. A config passes when the picker gets past loading it ("Controller manager starting"),
keeps running, and serves its metrics and health ports. A broken config must make it exit, or
the check proves nothing.

The llm-d router's picker (P/D, load-aware scoring) cannot be built here: its dependency
`github.com/llm-d/llm-d-kv-cache` is not served by the Go module proxy this machine reaches. Its
configs are checked by unit tests against the shapes read from its v0.7.1 source
(tests/unit/builders/test_epp_config.py), and a test here makes sure they really are llm-d
configs, so that none slips past the real GIE picker unchecked.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import Client
from lightkube.types import PatchType
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.builders.epp import GIE_EPP_IMAGE, LLMD_EPP_IMAGE
from fusioninfer.runtime.registry import default_registry, raw_resource
from fusioninfer_dev.localcluster.build import GIE_EPP, ensure_component
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.components import pick_free_ports

pytestmark = pytest.mark.integration

STARTED = "Controller manager starting"
VLLM = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B"]}
SGLANG = {
    "name": "sglang",
    "image": "lmsysorg/sglang:v0.5.3",
    "command": ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--enable-metrics"],
}
STRATEGIES = ("prefix-cache", "kv-cache-utilization", "queue-size", "lora-affinity", "pd-disaggregation")
USER_CONFIG = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
- type: single-profile-handler
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 1
  - pluginRef: max-score-picker
"""


def cases() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for engine_name, engine in (("vllm", VLLM), ("sglang", SGLANG)):
        for strategy in STRATEGIES:
            service = InferenceServiceWrapper().router(strategy)
            if strategy == "pd-disaggregation":
                service.prefiller(container=engine).decoder(container=engine)
            else:
                service.worker(container=engine)
            out[f"{strategy}-{engine_name}"] = service.obj()
    weighted = {
        "plugins": {
            "prefixCacheScorer": {"enabled": True, "weight": 2.0},
            "loadAwareScorer": {"enabled": True, "weight": 1.0},
            "queueScorer": {"enabled": True, "weight": 0.5},
        }
    }
    out["weighted-scorers-llmd"] = (
        InferenceServiceWrapper().router(endpointPicker=weighted).worker(container=VLLM).obj()
    )
    gie_weighted = {"plugins": {"kvCacheUtilizationScorer": {"enabled": True, "weight": 0.7},
                                "queueScorer": {"enabled": True, "weight": 0.3}}}  # fmt: skip
    out["weighted-scorers-gie"] = (
        InferenceServiceWrapper().router(endpointPicker=gie_weighted).worker(container=VLLM).obj()
    )
    out["user-endpoint-picker-config"] = (
        InferenceServiceWrapper().router(endpointPickerConfig=USER_CONFIG).worker(container=VLLM).obj()
    )
    return out


CASES = cases()
# What the llm-d picker would run (P/D, llm-d-only scorers): not startable here (see above).
LLMD_CASES = {"pd-disaggregation-vllm", "pd-disaggregation-sglang", "weighted-scorers-llmd"}
GIE_CASES = sorted(set(CASES) - LLMD_CASES)


@dataclass
class Rendered:
    image: str
    args: list[str]
    config: str
    pool: dict[str, Any]


def render(doc: dict[str, Any], namespace: str) -> Rendered:
    spec = {**doc, "metadata": {"name": "svc", "namespace": namespace}}
    objects = build(parse(spec), BuildOptions(capabilities=Capabilities(server_version=(1, 33)))).objects
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "svc-epp")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "epp"]
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    (config,) = config_map["data"].values()
    pool = next(o for o in objects if o["kind"] == "InferencePool")
    return Rendered(image=container["image"], args=list(container.get("args") or []), config=config, pool=pool)


@pytest.fixture(scope="module")
def picker() -> Path:
    """The GIE picker, built from its Go module (cached)."""
    return ensure_component(GIE_EPP) / "epp"


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    health_port: int

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_picker(cluster: LocalCluster, tmp_path: Path) -> Iterator[Any]:
    running: list[subprocess.Popen[bytes]] = []

    def start(binary: Path, args: list[str], config: str) -> Started:
        config_file = tmp_path / f"config-{len(running)}.yaml"
        config_file.write_text(config)
        grpc, health, metrics = pick_free_ports(3)
        ours = [a for a in args if not a.startswith("--config-file=")]
        argv = [
            str(binary),
            *ours,
            f"--config-file={config_file}",
            f"--kubeconfig={cluster.kubeconfig_path}",
            f"--grpc-port={grpc}",
            f"--grpc-health-port={health}",
            f"--metrics-port={metrics}",
        ]
        log = tmp_path / f"picker-{len(running)}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        running.append(proc)
        return Started(proc, log, metrics, health)

    yield start
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_started(picker: Started, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if picker.proc.poll() is not None:
            pytest.fail(f"the picker exited with {picker.proc.returncode} on our config:\n{picker.text()[-4000:]}")
        if STARTED in picker.text():
            return
        time.sleep(0.1)
    pytest.fail(f"the picker did not get past loading its config in {timeout}s:\n{picker.text()[-4000:]}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def apply_pool(client: Client, pool: dict[str, Any]) -> None:
    resource = raw_resource(default_registry.for_manifest(pool))
    meta = pool["metadata"]
    client.patch(
        resource, meta["name"], pool, namespace=meta["namespace"], patch_type=PatchType.APPLY, field_manager="t"
    )


def test_every_case_is_for_the_picker_it_is_started_on() -> None:
    images = {case: render(doc, "ns").image for case, doc in CASES.items()}
    assert {c for c, image in images.items() if image == LLMD_EPP_IMAGE} == LLMD_CASES
    assert {images[c] for c in GIE_CASES} == {GIE_EPP_IMAGE}


@pytest.mark.parametrize("case", GIE_CASES)
def test_the_real_picker_loads_the_rendered_config(
    case: str, client: Client, namespace: str, picker: Path, start_picker: Any
) -> None:
    rendered = render(CASES[case], namespace)
    apply_pool(client, rendered.pool)
    running = start_picker(picker, rendered.args, rendered.config)
    wait_started(running)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (port_open(running.metrics_port) and port_open(running.health_port)):
        assert running.proc.poll() is None, running.text()[-4000:]
        time.sleep(0.2)
    assert port_open(running.health_port), "gRPC health port not served"
    metrics = httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=5, trust_env=False)
    assert metrics.status_code == 200, metrics.text[:500]
    time.sleep(1.0)
    assert running.proc.poll() is None, f"the picker died after start-up:\n{running.text()[-4000:]}"


@pytest.mark.parametrize("case", ["pd-disaggregation-vllm", "weighted-scorers-llmd"])
def test_a_config_the_gie_picker_does_not_know_makes_it_exit(
    case: str, client: Client, namespace: str, picker: Path, start_picker: Any
) -> None:
    """The check above can fail: an llm-d config (plugins GIE does not register) on the GIE picker,
    as with a mismatched `endpointPicker.image`."""
    rendered = render(CASES[case], namespace)
    apply_pool(client, rendered.pool)
    running = start_picker(picker, rendered.args, rendered.config)
    assert running.proc.wait(timeout=60) != 0
    assert "Failed to parse configuration" in running.text()
    assert "is not found in registry" in running.text()
