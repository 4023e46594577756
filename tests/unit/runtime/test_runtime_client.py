"""The operator's client asks for strict field validation on every write, and only on writes."""

from __future__ import annotations

import httpx2
import pytest

from fusioninfer.runtime.client import StrictFieldValidation


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


async def test_an_explicit_choice_is_kept() -> None:
    inner = Recorder()
    async with httpx2.AsyncClient(transport=StrictFieldValidation(inner), base_url="https://api") as http:
        await http.patch("/api/v1/namespaces/n/configmaps/c", params={"fieldValidation": "Ignore"})
    assert inner.urls[0].params.get_list("fieldValidation") == ["Ignore"]
