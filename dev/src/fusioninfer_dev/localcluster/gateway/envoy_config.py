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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusioninfer.api.durations import duration_ms
from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.gateway.status import POOL_GROUP, Key, served_listener
from fusioninfer_dev.localcluster.kube_loop import meta

DESTINATION_HEADER = "x-gateway-destination-endpoint"
EXT_PROC = "envoy.filters.http.ext_proc"
# The body-based router's ext_proc filter: first in the chain, for every route.
BODY_ROUTER = "fusioninfer.body-based-router"
BODY_ROUTER_CLUSTER = "body-based-router"
TYPES = "type.googleapis.com/envoy."
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
class PickerTarget:
    """Where an InferencePool's endpoint picker serves ext_proc, or why it does not."""

    host: str = ""
    port: int = 0
    tls: bool = True
    unavailable: str = ""


@dataclass(frozen=True)
class Listener:
    """One Envoy listener to program: a Gateway listener with its routes."""

    gateway: Key
    name: str
    address: str
    port: int
    routes: tuple[Obj, ...]


def cluster_name(kind: str, key: Key, port: int | None = None) -> str:
    return f"{kind}/{key[0]}/{key[1]}" + (f"/{port}" if port is not None else "")


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


def _string_match(kind: str | None, value: str) -> Obj:
    return {"safe_regex": {"regex": value}} if kind == "RegularExpression" else {"exact": value}


def route_match(match: Mapping[str, Any]) -> Obj:
    """An HTTPRouteMatch as an Envoy RouteMatch (prefixes match whole path segments)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = path.get("type") or "PathPrefix", str(path.get("value") or "/")
    out: Obj
    if kind == "Exact":
        out = {"path": value}
    elif kind == "RegularExpression":
        out = {"safe_regex": {"regex": value}}
    elif value.rstrip("/") == "":
        out = {"prefix": "/"}
    else:
        out = {"path_separated_prefix": value.rstrip("/")}
    headers = [
        {"name": str(h["name"]).lower(), "string_match": _string_match(h.get("type"), str(h["value"]))}
        for h in match.get("headers") or []
    ]
    if match.get("method"):
        headers.append({"name": ":method", "string_match": {"exact": str(match["method"])}})
    if headers:
        out["headers"] = headers
    query = [
        {"name": str(q["name"]), "string_match": _string_match(q.get("type"), str(q["value"]))}
        for q in match.get("queryParams") or []
    ]
    if query:
        out["query_parameters"] = query
    return out


def precedence(match: Mapping[str, Any], route: Mapping[str, Any], rule_index: int) -> tuple[Any, ...]:
    """Gateway API order: exact path, longest prefix, method, most headers, most query params,
    then the oldest route, then namespace/name, then rule order."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    rank = {"Exact": 0, "PathPrefix": 1}.get(str(path.get("type") or "PathPrefix"), 2)
    return (
        rank,
        -len(str(path.get("value") or "")),
        0 if match.get("method") else 1,
        -len(match.get("headers") or []),
        -len(match.get("queryParams") or []),
        str(meta(route).get("creationTimestamp", "")),
        f"{meta(route).get('namespace', '')}/{meta(route).get('name', '')}",
        rule_index,
    )


def _duration(value: Any) -> str | None:
    """A Gateway API Duration (`1h30m`, `500ms`) as protobuf JSON seconds (`0s` disables)."""
    if value is None:
        return None
    ms = duration_ms(value)
    if ms is None:
        return None
    return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"


def _json_response(status: int, message: str) -> Obj:
    body = json.dumps({"error": {"message": message, "type": "GatewayError", "code": status}})
    return {"status": status, "body": {"inline_string": body}}


def _redirect(spec: Mapping[str, Any]) -> Obj:
    out: Obj = {}
    if spec.get("scheme"):
        out["scheme_redirect"] = spec["scheme"]
    if spec.get("hostname"):
        out["host_redirect"] = spec["hostname"]
    if spec.get("port"):
        out["port_redirect"] = int(spec["port"])
    path = spec.get("path") or {}
    if path.get("type") == "ReplaceFullPath":
        out["path_redirect"] = path.get("replaceFullPath", "/")
    elif path.get("type") == "ReplacePrefixMatch":
        out["prefix_rewrite"] = path.get("replacePrefixMatch", "/")
    codes = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER", 307: "TEMPORARY_REDIRECT"}
    codes[308] = "PERMANENT_REDIRECT"
    out["response_code"] = codes.get(int(spec.get("statusCode") or 302), "FOUND")
    return out


def _header_changes(spec: Mapping[str, Any]) -> tuple[list[Obj], list[str]]:
    add = [
        {"header": {"key": h["name"], "value": h["value"]}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for h in spec.get("set") or []
    ] + [
        {"header": {"key": h["name"], "value": h["value"]}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
        for h in spec.get("add") or []
    ]
    return add, [str(h) for h in spec.get("remove") or []]


def route_action(
    route: Mapping[str, Any],
    rule: Mapping[str, Any],
    pickers: Mapping[Key, PickerTarget],
    services: Mapping[tuple[str, str, int], Sequence[tuple[str, int]]],
) -> Obj:
    """What Envoy does for a matching request: redirect, answer, or route (with the picker)."""
    namespace = str(meta(route).get("namespace", ""))
    out: Obj = {}
    for item in rule.get("filters") or []:
        kind = item.get("type")
        if kind == "RequestRedirect":
            return {"redirect": _redirect(item.get("requestRedirect") or {})}
        if kind == "RequestHeaderModifier":
            add, remove = _header_changes(item.get("requestHeaderModifier") or {})
            out.setdefault("request_headers_to_add", []).extend(add)
            out.setdefault("request_headers_to_remove", []).extend(remove)
        if kind == "ResponseHeaderModifier":
            add, remove = _header_changes(item.get("responseHeaderModifier") or {})
            out.setdefault("response_headers_to_add", []).extend(add)
            out.setdefault("response_headers_to_remove", []).extend(remove)
    timeouts = rule.get("timeouts") or {}
    timeout = _duration(timeouts.get("request")) or _duration(timeouts.get("backendRequest")) or "0s"
    refs = rule.get("backendRefs") or []
    pools = [r for r in refs if r.get("group") == POOL_GROUP and r.get("kind") == "InferencePool"]
    if pools:
        key = (str(pools[0].get("namespace") or namespace), str(pools[0]["name"]))
        picker = pickers.get(key)
        if picker is None or picker.unavailable:
            why = picker.unavailable if picker else "the InferencePool does not exist"
            return {**out, "direct_response": _json_response(503, f"InferencePool {key[0]}/{key[1]}: {why}")}
        per_route = {
            "@type": f"{TYPES}extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
            "overrides": {"grpc_service": _grpc_service(cluster_name("picker", key), picker)},
        }
        action = {"cluster": cluster_name("pool", key), "timeout": timeout, "idle_timeout": "3600s"}
        return {**out, "route": action, "typed_per_filter_config": {EXT_PROC: per_route}}
    weighted = []
    for ref in refs:
        target = (str(ref.get("namespace") or namespace), str(ref["name"]), int(ref.get("port") or 0))
        if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service" or target not in services:
            return {**out, "direct_response": _json_response(500, f"backend {ref.get('name')} does not resolve")}
        weighted.append({"name": cluster_name("service", target[:2], target[2]), "weight": int(ref.get("weight", 1))})
    if not weighted:
        return {**out, "direct_response": _json_response(500, "the rule has no backend")}
    disabled = {EXT_PROC: {"@type": f"{TYPES}config.route.v3.FilterConfig", "disabled": True}}
    return {
        **out,
        "route": {"weighted_clusters": {"clusters": weighted}, "timeout": timeout},
        **_ext_proc_off(disabled),
    }


def _ext_proc_off(disabled: Obj) -> Obj:
    return {"typed_per_filter_config": disabled}


def _grpc_service(cluster: str, picker: PickerTarget) -> Obj:
    return {"envoy_grpc": {"cluster_name": cluster, "authority": f"{picker.host}:{picker.port}"}, "timeout": "10s"}


def envoy_routes(
    routes: Sequence[Obj],
    pickers: Mapping[Key, PickerTarget],
    services: Mapping[tuple[str, str, int], Sequence[tuple[str, int]]],
) -> list[Obj]:
    """Virtual hosts: one per route hostname (with the hostname-less routes too), and `*`."""
    entries: list[tuple[tuple[Any, ...], tuple[str, ...], Obj]] = []
    for route in routes:
        hostnames = tuple(str(h) for h in (route.get("spec") or {}).get("hostnames") or [])
        for index, rule in enumerate((route.get("spec") or {}).get("rules") or []):
            action = route_action(route, rule, pickers, services)
            for match_index, match in enumerate(rule.get("matches") or [{}]):
                name = f"{meta(route).get('namespace')}/{meta(route).get('name')}/rule/{index}/match/{match_index}"
                entry = {"name": name, "match": route_match(match), **action}
                entries.append((precedence(match, route, index), hostnames, entry))
    entries.sort(key=lambda e: e[0])
    named = sorted({h for _, hosts, _ in entries for h in hosts})
    # Within a hostname, routes naming it come before hostname-less ones (Gateway API precedence).
    hosts: list[Obj] = [
        {
            "name": host,
            "domains": [host, f"{host}:*"],
            "routes": [e for _, hs, e in entries if host in hs] + [e for _, hs, e in entries if not hs] + [NO_ROUTE],
        }
        for host in named
    ]
    hosts.append({"name": "any", "domains": ["*"], "routes": [e for _, hs, e in entries if not hs] + [NO_ROUTE]})
    return hosts


# Last in every virtual host: a request no HTTPRoute matches gets a body that says why, not
# Envoy's empty 404 (with body-based routing, usually a model no service serves).
NO_ROUTE: Obj = {
    "name": "no-route",
    "match": {"prefix": "/"},
    "direct_response": {
        "status": 404,
        "body": {
            "inline_string": json.dumps(
                {
                    "error": {
                        "message": "no HTTPRoute on this Gateway matches the request: with body-based routing the "
                        'request\'s "model" must be a model name an InferenceService serves',
                        "type": "NotFoundError",
                        "code": 404,
                    }
                }
            )
        },
    },
}


def body_router_filter(target: PickerTarget) -> Obj:
    """The body-based router reads the JSON body's `model` into X-Gateway-Model-Name and clears the
    route cache, so that Envoy picks the HTTPRoute (and pool) of that model; a body it cannot
    read passes unchanged (`failure_mode_allow`), to be answered by the routes."""
    return {
        "name": BODY_ROUTER,
        "typed_config": {
            "@type": f"{TYPES}extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": _grpc_service(BODY_ROUTER_CLUSTER, target),
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
                    "grpc_service": _grpc_service(cluster_name("picker", first_picker[0]), first_picker[1]),
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
