"""The operator's AsyncClient: strict field validation on every write, every request counted, and
a connection pool that does not cap the number of open watches.

All three live in the HTTP transport lightkube is given, the one hook it offers into every
request: no wrapper around each call site, and no reaching into lightkube's private attributes.

Strict field validation: without it the apiserver drops a field its schema does not know (a
misspelt or misplaced field in a user's pod template, a LeaderWorkerSet, an HTTPRoute) and only
returns a warning header nobody reads; the child then runs without what the user asked for. With
`fieldValidation=Strict` the write fails with the field's path, and the reconciler reports it in
status and an Event.

Every informer holds one long-lived watch request, and each needs its own HTTP/1.1 connection.
httpx's default pool allows 100 connections: an operator watching ~15 kinds in 8 namespaces
uses them all, after which every other request (applies, status writes, lease renewals) waits
for a free connection until it times out, and leadership is lost. The pool is left unbounded
instead; the apiserver copes with thousands of watches.
"""

from __future__ import annotations

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.models import User

from fusioninfer.runtime.metrics import RuntimeMetrics
from fusioninfer.runtime.request_counter import CountingTransport, RequestCounter

KEEPALIVE_CONNECTIONS = 20
VALIDATED_METHODS = frozenset({"POST", "PUT", "PATCH"})
STRICT = b"fieldValidation=Strict"


class StrictFieldValidation(httpx2.AsyncBaseTransport):
    """Adds `fieldValidation=Strict` to every create, update and patch (apply included) sent
    through `inner`, unless the caller chose a value itself."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # On the raw query bytes: parsing the query into params and back costs more than the
        # rest of this transport together, on every write.
        if request.method in VALIDATED_METHODS and b"fieldValidation=" not in (query := request.url.query):
            request.url = request.url.copy_with(query=query + b"&fieldValidation=Strict" if query else STRICT)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def async_client(
    config: KubeConfig,
    *,
    field_manager: str,
    timeout: float = 10.0,
    counter: RequestCounter | None = None,
    metrics: RuntimeMetrics | None = None,
) -> AsyncClient:
    """`lightkube.AsyncClient` for `config` with an unbounded connection pool, whose requests are
    counted in `counter` (when given) and in `metrics` (default: the process's metrics).

    A custom transport replaces the one httpx would build, so the TLS context (cluster CA,
    client certificate) is built here the same way lightkube builds it. With an explicit
    transport httpx does not route through `HTTPS_PROXY`; an operator talks to its own apiserver
    directly, so that is the behaviour we want.
    """
    single = config.get()
    if single is None:
        raise ValueError("the kubeconfig selects no context")
    user = single.user if single.user is not None else User()
    tls = verify_cluster(single.cluster, user, single.abs_file, trust_env=True)
    pool = httpx2.AsyncHTTPTransport(
        verify=tls, limits=httpx2.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS)
    )
    transport = CountingTransport(StrictFieldValidation(pool), counter, metrics=metrics)
    return AsyncClient(config=config, field_manager=field_manager, transport=transport, timeout=httpx2.Timeout(timeout))
