"""The operator's client asks for strict field validation on every write, and only on writes, and
counts every request in its transport."""

from __future__ import annotations

import httpx2
import pytest
from prometheus_client import CollectorRegistry

from fusioninfer.runtime.client import StrictFieldValidation
from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.request_counter import CountingTransport, RequestCounter


class Recorder(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self.urls: list[httpx2.URL] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.urls.append(request.url)
        return httpx2.Response(200, json={})


@pytest.mark.parametrize(
    ("method", "expected"),
    [("PATCH", "Strict"), ("POST", "Strict"), ("PUT", "Strict"), ("GET", None), ("DELETE", None)],
)
async def test_writes_get_strict_field_validation(method: str, expected: str | None) -> None:
    inner = Recorder()
    async with httpx2.AsyncClient(transport=StrictFieldValidation(inner), base_url="https://api") as http:
        await http.request(method, "/apis/apps/v1/namespaces/n/deployments/d", params={"fieldManager": "fusioninfer"})
    (url,) = inner.urls
    assert url.params.get("fieldValidation") == expected
    assert url.params["fieldManager"] == "fusioninfer"


async def test_a_write_without_a_query_gets_one() -> None:
    inner = Recorder()
    async with httpx2.AsyncClient(transport=StrictFieldValidation(inner), base_url="https://api") as http:
        await http.post("/api/v1/namespaces/n/events")
    assert str(inner.urls[0]) == "https://api/api/v1/namespaces/n/events?fieldValidation=Strict"


async def test_an_explicit_choice_is_kept() -> None:
    inner = Recorder()
    async with httpx2.AsyncClient(transport=StrictFieldValidation(inner), base_url="https://api") as http:
        await http.patch("/api/v1/namespaces/n/configmaps/c", params={"fieldValidation": "Ignore"})
    assert inner.urls[0].params.get_list("fieldValidation") == ["Ignore"]


async def test_every_request_is_counted_as_sent_and_in_the_metric() -> None:
    inner = Recorder()
    counter = RequestCounter()
    metrics = RuntimeMetrics(CollectorRegistry())
    transport = CountingTransport(StrictFieldValidation(inner), counter, metrics=metrics)
    async with httpx2.AsyncClient(transport=transport, base_url="https://api") as http:
        await http.patch("/api/v1/namespaces/n/configmaps/c", params={"fieldManager": "fusioninfer"})
        await http.get("/api/v1/namespaces/n/configmaps", params={"watch": "1"})
    assert (counter.writes, counter.reads, counter.total) == (1, 1, 2)
    # Recorded as the caller wrote it, before the strict-validation parameter is added.
    assert counter.recent_writes() == [("PATCH", "/api/v1/namespaces/n/configmaps/c?fieldManager=fusioninfer")]
    assert inner.urls[0].params["fieldValidation"] == "Strict"
    labels = {"code": "200", "method": "GET", "host": "api"}
    assert metrics.registry.get_sample_value("rest_client_requests_total", labels) == 1
    counter.reset()
    assert counter.total == 0


async def test_without_a_counter_only_the_metric_counts() -> None:
    metrics = RuntimeMetrics(CollectorRegistry())
    async with httpx2.AsyncClient(
        transport=CountingTransport(Recorder(), metrics=metrics), base_url="https://a"
    ) as http:
        await http.delete("/api/v1/namespaces/n/pods/p")
    labels = {"code": "200", "method": "DELETE", "host": "a"}
    assert metrics.registry.get_sample_value("rest_client_requests_total", labels) == 1
