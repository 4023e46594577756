"""A test's own data path on the session cluster: the local gateway (real Envoy), the pod runner
(real GIE picker, stand-in model servers) and a Gateway `inference-gateway` in the namespace.

`DataPath` sends requests through the Gateway's address and reads Envoy's access log, so a test
can say which pod served a request without trusting the model server's own header alone.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lightkube import Client
from lightkube.types import PatchType

from fusioninfer.runtime.registry import default_registry, raw_resource
from fusioninfer_dev.localcluster.build import GIE_EPP, ensure_component
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.fakes import FakeControllers
from fusioninfer_dev.localcluster.gateway.status import Gateway, gateway_class_manifest, gateway_manifest
from fusioninfer_dev.localcluster.podrunner import PodRunner, Timing

GATEWAY = "inference-gateway"


def apply(client: Client, manifest: dict[str, Any]) -> None:
    resource = raw_resource(default_registry.for_manifest(manifest))
    meta = manifest["metadata"]
    kwargs = {"namespace": meta["namespace"]} if "namespace" in meta else {}
    client.patch(resource, meta["name"], manifest, patch_type=PatchType.APPLY, field_manager="tests", **kwargs)


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    pod: str
    seconds: float
    request_id: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class DataPath:
    namespace: str
    controllers: FakeControllers
    client: Client
    workdir: Path

    @property
    def runner(self) -> PodRunner:
        runner = self.controllers.controllers["pods"]
        assert isinstance(runner, PodRunner)
        return runner

    def address(self, timeout: float = 60.0) -> str:
        """The Gateway's address once it is Programmed (Envoy listens there)."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = dict(self.client.get(Gateway, GATEWAY, namespace=self.namespace)).get("status") or {}
            programmed = any(
                c["type"] == "Programmed" and c["status"] == "True" for c in status.get("conditions") or []
            )
            if programmed and status.get("addresses"):
                return str(status["addresses"][0]["value"])
            time.sleep(0.2)
        raise AssertionError(f"Gateway not Programmed with an address in {timeout}s: {status}")

    def post(self, body: dict[str, Any], path: str = "/v1/chat/completions", timeout: float = 30.0) -> Reply:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        response = httpx.post(
            f"http://{self.address()}{path}",
            json=body,
            headers={"x-request-id": request_id},
            timeout=timeout,
            trust_env=False,
        )
        pod = response.headers.get("x-inference-pod", "")
        return Reply(response.status_code, response.text, pod, time.monotonic() - started, request_id)

    def chat(self, content: str, model: str = "Qwen/Qwen3-8B", **extra: Any) -> Reply:
        return self.post({"model": model, "messages": [{"role": "user", "content": content}], **extra})

    def served(self, content: str = "hello", model: str = "Qwen/Qwen3-8B", timeout: float = 60.0) -> Reply:
        """A 200 through the gateway, waiting while the picker has not seen the pods yet."""
        deadline = time.monotonic() + timeout
        reply = self.chat(content, model)
        while reply.status != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            reply = self.chat(content, model)
        assert reply.status == 200, reply
        return reply

    def logged(self, reply: Reply, timeout: float = 10.0) -> dict[str, Any]:
        """Envoy's access log line of that request (Envoy flushes the log about once a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.access_log():
                if line.get("request_id") == reply.request_id:
                    return line
            time.sleep(0.2)
        raise AssertionError(f"no access log line for request {reply.request_id}")

    def access_log(self) -> list[dict[str, Any]]:
        path = self.workdir / "envoy" / "access.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@contextmanager
def data_path(cluster: LocalCluster, namespace: str, workdir: Path, timing: Timing | None = None) -> Iterator[DataPath]:
    """The local gateway and pod runner acting in `namespace` only, with a Gateway there."""
    assert cluster.pod_block, "the session cluster has no pod address block"
    picker = ensure_component(GIE_EPP) / "epp"
    with cluster.client(field_manager="tests") as client:
        apply(client, gateway_class_manifest())
        apply(client, gateway_manifest(namespace, GATEWAY))
        controllers = FakeControllers(
            cluster.kubeconfig_path,
            namespace=namespace,
            enabled=("gateway", "pods"),
            pod_block=cluster.pod_block,
            workdir=workdir,
            gie_picker=picker,
            timing=timing or Timing(time_to_first_token_ms=0, inter_token_latency_ms=10),
            metrics_write_port=cluster.metrics_write_port,
        )
        with controllers:
            yield DataPath(namespace, controllers, client, workdir)


@contextmanager
def busy(ip: str, port: int, count: int, model: str = "Qwen/Qwen3-8B", words: int = 400) -> Iterator[None]:
    """`count` slow requests straight at one pod (not through the gateway) while the block runs:
    load the picker should see in that pod's metrics. Waits until the pod reports them."""
    url = f"http://{ip}:{port}/v1/completions"
    body = {"model": model, "prompt": " ".join(["load"] * words)}
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(httpx.post, url, json=body, timeout=120, trust_env=False) for _ in range(count)]
        wait_reported(ip, port, count)
        # The picker scrapes every pod's /metrics every 50 ms; give it a few rounds to see the load
        # (a picker that started a moment ago may not have scraped this pod yet).
        time.sleep(1.0)
        try:
            yield
        finally:
            for future in futures:
                future.result()


def backlog(ip: str, port: int, count: int, model: str = "Qwen/Qwen3-8B", words: int = 400) -> None:
    """`count` slow requests at one pod, left running (daemon threads): for a test that needs
    the load to last while something slow (an HPA) reacts, and does not want to wait for it to
    drain. The requests end with the pod's process at the latest. Returns once the pod reports
    them in its metrics."""
    url = f"http://{ip}:{port}/v1/completions"
    body = {"model": model, "prompt": " ".join(["load"] * words)}

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, json=body, timeout=600, trust_env=False)

    for _ in range(count):
        threading.Thread(target=send, daemon=True, name=f"backlog-{ip}").start()
    wait_reported(ip, port, count)


def wait_reported(ip: str, port: int, count: int, wait: float = 10.0) -> None:
    """Until the pod's metrics count `count` requests running or waiting."""
    deadline = time.monotonic() + wait
    metrics = ""
    while time.monotonic() < deadline:
        metrics = httpx.get(f"http://{ip}:{port}/metrics", timeout=5, trust_env=False).text
        if running_requests(metrics) + waiting_requests(metrics) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"pod {ip} never reported {count} requests:\n{metrics}")


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith((name + "{", name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def running_requests(metrics: str) -> float:
    return _gauge(metrics, "vllm:num_requests_running")


def waiting_requests(metrics: str) -> float:
    return _gauge(metrics, "vllm:num_requests_waiting")
