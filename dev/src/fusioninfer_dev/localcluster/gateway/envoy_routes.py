"""HTTPRoute rules -> Envoy routes (pure): each match translated, ordered by the Gateway API's
precedence, grouped into virtual hosts per hostname; a rule whose backend is an InferencePool
turns on the `ext_proc` filter towards that pool's endpoint picker and goes to the ORIGINAL_DST
cluster of the endpoint it picks. envoy_config.py puts these routes into listeners.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fusioninfer.api.durations import duration_ms
from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.gateway.status import POOL_GROUP, Key
from fusioninfer_dev.localcluster.kube_loop import meta

DESTINATION_HEADER = "x-gateway-destination-endpoint"
EXT_PROC = "envoy.filters.http.ext_proc"
TYPES = "type.googleapis.com/envoy."


@dataclass(frozen=True)
class PickerTarget:
    """Where an InferencePool's endpoint picker serves ext_proc, or why it does not."""

    host: str = ""
    port: int = 0
    tls: bool = True
    unavailable: str = ""


def cluster_name(kind: str, key: Key, port: int | None = None) -> str:
    return f"{kind}/{key[0]}/{key[1]}" + (f"/{port}" if port is not None else "")


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
            "overrides": {"grpc_service": grpc_service(cluster_name("picker", key), picker)},
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


def grpc_service(cluster: str, picker: PickerTarget) -> Obj:
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
