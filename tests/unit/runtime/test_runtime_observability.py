"""Metric names, the /metrics /healthz /readyz server, structured logging, kind resolution."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from lightkube.generic_resource import Generic, GenericNamespacedResource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from fusioninfer.runtime import metrics as metrics_mod
from fusioninfer.runtime.logs import log_context, record_context, setup_logging
from fusioninfer.runtime.metrics import MetricsServer, RuntimeMetrics
from fusioninfer.runtime.registry import KindRegistry, default_plural, is_namespaced, raw_resource
from fusioninfer.runtime.workqueue import WorkQueue

CONTROLLER_RUNTIME_NAMES = {
    "controller_runtime_reconcile_total": {"controller", "result"},
    "controller_runtime_reconcile_errors_total": {"controller"},
    "controller_runtime_reconcile_time_seconds_bucket": {"controller", "le"},
    "controller_runtime_active_workers": {"controller"},
    "controller_runtime_max_concurrent_reconciles": {"controller"},
    "workqueue_depth": {"name"},
    "workqueue_adds_total": {"name"},
    "workqueue_queue_duration_seconds_bucket": {"name", "le"},
    "workqueue_work_duration_seconds_bucket": {"name", "le"},
    "workqueue_retries_total": {"name"},
    "workqueue_unfinished_work_seconds": {"name"},
    "workqueue_longest_running_processor_seconds": {"name"},
}


async def test_controller_runtime_metric_names_and_labels() -> None:
    m = RuntimeMetrics(CollectorRegistry())
    # Touch every labelled metric once so it has a sample.
    m.reconcile_total.labels(controller="c", result="success").inc()
    m.reconcile_errors_total.labels(controller="c").inc()
    m.reconcile_time_seconds.labels(controller="c").observe(0.1)
    m.active_workers.labels(controller="c").set(1)
    m.max_concurrent_reconciles.labels(controller="c").set(4)
    q: WorkQueue[str] = WorkQueue("c", metrics=m)
    q.add("a")
    q.add_rate_limited("b")
    seen: dict[str, set[str]] = {}
    for family in m.registry.collect():
        for s in family.samples:
            seen.setdefault(s.name, set()).update(s.labels)
    for name, labels in CONTROLLER_RUNTIME_NAMES.items():
        assert name in seen, f"missing metric {name}"
        assert seen[name] == labels, f"{name}: labels {seen[name]} != {labels}"
    text = generate_latest(m.registry).decode()
    assert 'controller_runtime_reconcile_total{controller="c",result="success"} 1.0' in text
    assert "# TYPE controller_runtime_reconcile_time_seconds histogram" in text


def test_use_registry_replaces_the_default() -> None:
    old_registry, old_default = metrics_mod.REGISTRY, metrics_mod._default
    try:
        reg = CollectorRegistry()
        m = metrics_mod.use_registry(reg)
        assert metrics_mod.default_metrics() is m
        assert m.registry is reg
        assert metrics_mod.REGISTRY is reg
    finally:
        metrics_mod.REGISTRY, metrics_mod._default = old_registry, old_default


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status = int(head.split()[1])
    headers = head.lower()
    return status, headers, body


async def test_metrics_server_endpoints() -> None:
    m = RuntimeMetrics(CollectorRegistry())
    m.reconcile_total.labels(controller="x", result="success").inc(3)
    ready = {"ok": False}
    async with MetricsServer("127.0.0.1", 0, registry=m.registry, ready_check=lambda: ready["ok"]) as server:
        assert server.port > 0
        status, headers, body = await http_get(server.port, "/metrics")
        assert status == 200
        assert "text/plain" in headers
        assert 'controller_runtime_reconcile_total{controller="x",result="success"} 3.0' in body
        assert (await http_get(server.port, "/healthz"))[0] == 200
        assert (await http_get(server.port, "/readyz"))[0] == 503
        ready["ok"] = True
        status, _, body = await http_get(server.port, "/readyz?verbose")
        assert (status, body) == (200, "ok")
        assert (await http_get(server.port, "/nope"))[0] == 404
        assert (await http_get(server.port, "/metrics", "POST"))[0] == 405
        status, _, body = await http_get(server.port, "/healthz", "HEAD")
        assert status == 200
        assert body == ""


async def test_metrics_server_async_and_failing_checks() -> None:
    async def ready() -> bool:
        await asyncio.sleep(0)
        return True

    def broken() -> bool:
        raise RuntimeError("boom")

    async with MetricsServer(
        "127.0.0.1", 0, registry=CollectorRegistry(), ready_check=ready, health_check=broken
    ) as server:
        assert (await http_get(server.port, "/readyz"))[0] == 200
        status, _, body = await http_get(server.port, "/healthz")
        assert status == 503
        assert "boom" in body


# -- logging -----------------------------------------------------------------------------------------


@pytest.fixture
def isolated_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("fusioninfer.test.logging")
    logger.propagate = False
    yield logger
    for h in list(logger.handlers):
        logger.removeHandler(h)


def test_json_logs_carry_context(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging("json", "DEBUG", stream, logger=isolated_logger)
    isolated_logger.info("outside")
    with log_context(controller="isvc", namespace="ns1", name="svc-a", reconcileID="r-1"):
        isolated_logger.info("applied %s", "Deployment", extra={"kind": "Deployment"})
        with log_context(name="svc-b"):
            isolated_logger.warning("nested")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    assert "namespace" not in lines[0]
    first = lines[1]
    assert first["msg"] == "applied Deployment"
    assert first["level"] == "info"
    assert first["logger"] == "fusioninfer.test.logging"
    assert (first["controller"], first["namespace"], first["name"], first["reconcileID"]) == (
        "isvc",
        "ns1",
        "svc-a",
        "r-1",
    )
    assert first["kind"] == "Deployment"
    assert lines[2]["name"] == "svc-b"
    assert lines[2]["namespace"] == "ns1"


async def test_context_follows_asyncio_tasks(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging("json", "INFO", stream, logger=isolated_logger)

    async def reconcile(name: str) -> None:
        with log_context(namespace="ns", name=name):
            await asyncio.sleep(0.001)
            isolated_logger.info("done")

    await asyncio.gather(*(reconcile(f"obj-{i}") for i in range(5)))
    names = sorted(json.loads(line)["name"] for line in stream.getvalue().splitlines())
    assert names == [f"obj-{i}" for i in range(5)]


def test_console_format_and_exceptions(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging("console", "INFO", stream, logger=isolated_logger)
    with log_context(namespace="ns", name="a"):
        try:
            raise ValueError("bad")
        except ValueError:
            isolated_logger.exception("failed")
    out = stream.getvalue()
    assert "ERROR" in out
    assert "failed" in out
    assert "namespace=ns name=a" in out
    assert "ValueError: bad" in out


def test_json_exceptions_are_one_line(isolated_logger: logging.Logger) -> None:
    stream = io.StringIO()
    setup_logging("json", "INFO", stream, logger=isolated_logger)
    try:
        raise KeyError("k")
    except KeyError:
        isolated_logger.exception("oops")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "KeyError" in json.loads(lines[0])["error"]


def test_setup_logging_is_idempotent_and_validates(isolated_logger: logging.Logger) -> None:
    setup_logging("json", "INFO", io.StringIO(), logger=isolated_logger)
    setup_logging("console", "INFO", io.StringIO(), logger=isolated_logger)
    ours = [h for h in isolated_logger.handlers if getattr(h, "_fusioninfer", False)]
    assert len(ours) == 1
    assert "ConsoleFormatter" in type(ours[0].formatter).__name__
    with pytest.raises(ValueError, match="unknown log format"):
        setup_logging("xml", logger=isolated_logger)  # type: ignore[arg-type]


def test_records_carry_context_for_any_handler(isolated_logger: logging.Logger) -> None:
    setup_logging("json", "INFO", io.StringIO(), logger=isolated_logger)
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    isolated_logger.addHandler(Capture())
    with log_context(namespace="n", name="x"):
        isolated_logger.info("hello", extra={"namespace": "explicit-extra-is-allowed"})
    assert record_context(captured[0]) == {"namespace": "n", "name": "x"}


# -- kinds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("InferenceService", "inferenceservices"),
        ("Gateway", "gateways"),
        ("Policy", "policies"),
        ("HTTPRoute", "httproutes"),
        ("Ingress", "ingresses"),
    ],
)
def test_default_plural(kind: str, plural: str) -> None:
    assert default_plural(kind) == plural


def test_raw_twin_keeps_api_info_and_decodes_dicts() -> None:
    twin = raw_resource(ConfigMap)
    assert twin is raw_resource(ConfigMap), "twins are cached"
    assert issubclass(twin, Generic)
    assert is_namespaced(twin)
    assert twin._api_info is ConfigMap._api_info
    assert not is_namespaced(raw_resource(Namespace))
    generic = KindRegistry().register("example.com/v1", "Widget")
    assert raw_resource(generic) is generic


def test_kind_registry_resolves_builtins_and_crds() -> None:
    reg = KindRegistry()
    assert reg.resolve("apps/v1", "Deployment") is Deployment
    assert reg.resolve("v1", "ConfigMap") is ConfigMap
    custom = reg.resolve("things.example.com/v1", "Gadget")
    assert issubclass(custom, GenericNamespacedResource)
    assert custom._api_info.plural == "gadgets"
    assert reg.resolve("things.example.com/v1", "Gadget") is custom
    explicit = reg.register("things.example.com/v1", "Mouse", plural="mice", namespaced=False)
    assert explicit._api_info.plural == "mice"
    assert not is_namespaced(explicit)
    assert reg.for_manifest({"apiVersion": "things.example.com/v1", "kind": "Mouse", "metadata": {}}) is explicit
