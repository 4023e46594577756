"""Gateway + HTTPRoute + InferencePool -> Envoy listeners and clusters (pure).

This is the translation a Gateway API implementation with Inference Extension support performs
(docs/routing.md says why the local cluster has its own): one Envoy listener per HTTP listener
of a Gateway, on the Gateway's address; one route per HTTPRoute rule match, ordered by the
Gateway API's precedence; and for a rule whose backend is an InferencePool, Envoy's
`ext_proc` filter calling that pool's endpoint picker, which answers with the chosen endpoint in
the `x-gateway-destination-endpoint` header, and an ORIGINAL_DST cluster that connects to
exactly that endpoint. The processing modes are those the Inference Extension's conformance
Envoy uses (headers and trailers sent, bodies full-duplex streamed), and a picker failure fails
the request (`failure_mode_allow: false`): routing to a random pod would hide the fault.

Answers for what cannot be served, in the Gateway API's terms: a rule whose backends do not
resolve gets a 500, and a pool without a serving picker a 503 saying so, both as JSON bodies a
user can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.gateway.envoy_routes import (
    DESTINATION_HEADER,
    EXT_PROC,
    TYPES,
    PickerTarget,
    cluster_name,
    envoy_routes,
    grpc_service,
)
from fusioninfer_dev.localcluster.gateway.status import Key, served_listener

__all__ = [
    "ACCESS_LOG_FORMAT",
    "BODY_ROUTER",
    "BODY_ROUTER_CLUSTER",
    "DESTINATION_HEADER",
    "EXT_PROC",
    "Listener",
    "PickerTarget",
    "body_router_filter",
    "cluster_name",
    "clusters_config",
    "listener_config",
    "listeners_for",
]

# The body-based router's ext_proc filter: first in the chain, for every route.
BODY_ROUTER = "fusioninfer.body-based-router"
BODY_ROUTER_CLUSTER = "body-based-router"
ACCESS_LOG_FORMAT = {
    "start": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "route": "%ROUTE_NAME%",
    "upstream": "%UPSTREAM_HOST%",
    "picked": f"%DYNAMIC_METADATA(envoy.lb:{DESTINATION_HEADER})%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}


@dataclass(frozen=True)
class Listener:
    """One Envoy listener to program: a Gateway listener with its routes."""

    gateway: Key
    name: str
    address: str
    port: int
    routes: tuple[Obj, ...]


def listeners_for(
    gateways: Mapping[Key, Obj], addresses: Mapping[Key, str], routes: Mapping[Key, Sequence[Obj]]
) -> list[Listener]:
    """The HTTP listeners to serve, each with the routes its Gateway accepted."""
    out = []
    for key, gateway in sorted(gateways.items()):
        if key not in addresses:
            continue
        for listener in (gateway.get("spec") or {}).get("listeners") or []:
            if served_listener(listener):
                name, port = str(listener["name"]), int(listener["port"])
                out.append(Listener(key, name, addresses[key], port, tuple(routes.get(key, ()))))
    return out


def body_router_filter(target: PickerTarget) -> Obj:
    """The body-based router reads the JSON body's `model` into X-Gateway-Model-Name and clears the
    route cache, so that Envoy picks the HTTPRoute (and pool) of that model; a body it cannot
    read passes unchanged (`failure_mode_allow`), to be answered by the routes."""
    return {
        "name": BODY_ROUTER,
        "typed_config": {
            "@type": f"{TYPES}extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": grpc_service(BODY_ROUTER_CLUSTER, target),
            "failure_mode_allow": True,
            "processing_mode": {
                "request_header_mode": "SEND",
                "response_header_mode": "SKIP",
                "request_body_mode": "FULL_DUPLEX_STREAMED",
                "response_body_mode": "NONE",
                "request_trailer_mode": "SEND",
                "response_trailer_mode": "SKIP",
            },
            "message_timeout": "30s",
        },
    }


def listener_config(
    listener: Listener,
    pickers: Mapping[Key, PickerTarget],
    services: Any,
    access_log: str,
    body_router: PickerTarget | None = None,
) -> Obj:
    """One Envoy Listener resource (an HTTP connection manager: the body-based router, the
    picker's ext_proc, the router)."""
    stat = f"{listener.gateway[0]}-{listener.gateway[1]}-{listener.name}"
    filters: list[Obj] = [body_router_filter(body_router)] if body_router is not None else []
    first_picker = next(((k, p) for k, p in sorted(pickers.items()) if not p.unavailable), None)
    if first_picker is not None:
        filters.append(
            {
                "name": EXT_PROC,
                "typed_config": {
                    "@type": f"{TYPES}extensions.filters.http.ext_proc.v3.ExternalProcessor",
                    "grpc_service": grpc_service(cluster_name("picker", first_picker[0]), first_picker[1]),
                    "failure_mode_allow": False,
                    "processing_mode": {
                        "request_header_mode": "SEND",
                        "response_header_mode": "SEND",
                        "request_body_mode": "FULL_DUPLEX_STREAMED",
                        "response_body_mode": "FULL_DUPLEX_STREAMED",
                        "request_trailer_mode": "SEND",
                        "response_trailer_mode": "SEND",
                    },
                    "message_timeout": "1000s",
                    # The picker also names its choice in `envoy.lb` metadata (logged as "picked").
                    "metadata_options": {"receiving_namespaces": {"untyped": ["envoy.lb"]}},
                },
            }
        )
    filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": f"{TYPES}extensions.filters.http.router.v3.Router",
                "suppress_envoy_headers": True,
            },
        }
    )
    manager = {
        "@type": f"{TYPES}extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat,
        "preserve_external_request_id": True,  # a client's x-request-id finds its access log line
        "route_config": {"name": stat, "virtual_hosts": envoy_routes(listener.routes, pickers, services)},
        "http_filters": filters,
        "access_log": [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": f"{TYPES}extensions.access_loggers.file.v3.FileAccessLog",
                    "path": access_log,
                    "log_format": {"json_format": {**ACCESS_LOG_FORMAT, "listener": stat}},
                },
            }
        ],
    }
    return {
        "@type": f"{TYPES}config.listener.v3.Listener",
        "name": stat,
        "address": {"socket_address": {"address": listener.address, "port_value": listener.port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _static_cluster(name: str, endpoints: Sequence[tuple[str, int]], **extra: Any) -> Obj:
    return {
        "@type": f"{TYPES}config.cluster.v3.Cluster",
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}}}
                        for ip, port in endpoints
                    ]
                }
            ],
        },
        **extra,
    }


def _grpc_cluster(name: str, target: PickerTarget) -> Obj:
    """gRPC over HTTP/2 to an ext_proc server, TLS unverified (its certificate is self-signed)."""
    http2 = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": f"{TYPES}extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    tls = {
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": f"{TYPES}extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {"alpn_protocols": ["h2"]},
            },
        }
    }
    extra = {"typed_extension_protocol_options": http2, **(tls if target.tls else {})}
    return _static_cluster(name, [(target.host, target.port)], **extra)


def clusters_config(
    pickers: Mapping[Key, PickerTarget],
    services: Mapping[tuple[str, str, int], Sequence[tuple[str, int]]],
    body_router: PickerTarget | None = None,
) -> list[Obj]:
    """A picker cluster and an ORIGINAL_DST cluster per pool; a STATIC cluster per Service
    backend; the body-based router's cluster."""
    out: list[Obj] = [_grpc_cluster(BODY_ROUTER_CLUSTER, body_router)] if body_router is not None else []
    for key, picker in sorted(pickers.items()):
        if picker.unavailable:
            continue
        out.append(_grpc_cluster(cluster_name("picker", key), picker))
        out.append(
            {
                "@type": f"{TYPES}config.cluster.v3.Cluster",
                "name": cluster_name("pool", key),
                "type": "ORIGINAL_DST",
                "lb_policy": "CLUSTER_PROVIDED",
                "connect_timeout": "5s",
                "original_dst_lb_config": {"use_http_header": True, "http_header_name": DESTINATION_HEADER},
            }
        )
    for (namespace, name, port), endpoints in sorted(services.items()):
        out.append(_static_cluster(cluster_name("service", (namespace, name), port), endpoints))
    return out
