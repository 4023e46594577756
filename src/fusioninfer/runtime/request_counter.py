"""Counting every request the operator sends, so a test (or the benchmark) can prove that an idle
operator writes nothing, and say which write happened when one did.

The count is taken in the HTTP client's transport (`CountingTransport`, which `client.async_client`
puts in front of the real one), not in the code that sends: so every write is seen, also the ones
that do not go through `runtime.apply` (status updates, Events, lease renewals). The same place
feeds client-go's ``rest_client_requests_total{code,method,host}`` metric.
"""

from __future__ import annotations

from collections import Counter, deque

import httpx2

from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestCounter:
    """Counts every HTTP request sent through a `CountingTransport`.

    ``writes`` is POST+PUT+PATCH+DELETE: applies, creates, status updates, deletes. ``recent``
    keeps the last requests as ``(method, path?query)`` so a failing "zero writes" test can say which
    write happened.
    """

    def __init__(self, keep: int = 500) -> None:
        self.by_method: Counter[str] = Counter()
        self.recent: deque[tuple[str, str]] = deque(maxlen=keep)

    def record(self, method: str, path: str) -> None:
        method = method.upper()
        self.by_method[method] += 1
        self.recent.append((method, path))

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.by_method.items() if m in WRITE_METHODS)

    @property
    def reads(self) -> int:
        return sum(n for m, n in self.by_method.items() if m not in WRITE_METHODS)

    @property
    def total(self) -> int:
        return sum(self.by_method.values())

    def recent_writes(self) -> list[tuple[str, str]]:
        return [r for r in self.recent if r[0] in WRITE_METHODS]

    def reset(self) -> None:
        self.by_method.clear()
        self.recent.clear()


class CountingTransport(httpx2.AsyncBaseTransport):
    """Records each request in `counter` (if given) before sending it through `inner`, and each
    response in the ``rest_client_requests_total`` metric.

    Outermost in the chain, so a request is recorded as the caller wrote it (before
    `StrictFieldValidation` adds its parameter), and also when it then fails to connect.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        counter: RequestCounter | None = None,
        *,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._inner = inner
        self.counter = counter
        self._requests_total = (metrics if metrics is not None else default_metrics()).rest_client_requests_total

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.counter is not None:
            self.counter.record(request.method, request.url.raw_path.decode("ascii", "replace"))
        response = await self._inner.handle_async_request(request)
        code = str(response.status_code)
        self._requests_total.labels(code=code, method=request.method, host=request.url.host).inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
