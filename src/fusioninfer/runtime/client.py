"""An AsyncClient whose connection pool does not cap the number of open watches.

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

KEEPALIVE_CONNECTIONS = 20


def async_client(config: KubeConfig, *, field_manager: str, timeout: float = 10.0) -> AsyncClient:
    """`lightkube.AsyncClient` for `config` with an unbounded connection pool.

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
    transport = httpx2.AsyncHTTPTransport(
        verify=tls, limits=httpx2.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_CONNECTIONS)
    )
    return AsyncClient(config=config, field_manager=field_manager, transport=transport, timeout=httpx2.Timeout(timeout))
