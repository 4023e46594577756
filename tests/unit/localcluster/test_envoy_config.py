"""Gateway API -> Envoy translation of the local gateway: what a request meets.

(The integration test `test_envoy_config_validates` feeds the same translations to the real
Envoy's `--mode validate`; these pin the semantics.)
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fusioninfer_dev.localcluster.gateway.envoy_config import (
    Listener,
    clusters_config,
    listener_config,
    listeners_for,
)
from fusioninfer_dev.localcluster.gateway.envoy_routes import (
    DESTINATION_HEADER,
    EXT_PROC,
    PickerTarget,
    _duration,
    envoy_routes,
    route_match,
)

POOL = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"}
PICKER = {("ns", "pool"): PickerTarget("127.0.0.1", 40001, tls=True)}


def route(name: str = "r", rules: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": spec.pop("created", "2026-01-01T00:00:00Z")},
        "spec": {"rules": rules if rules is not None else [{"backendRefs": [POOL]}], **spec},
    }


def only_host(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `*` host's routes before the final no-route answer every host ends with."""
    (any_host,) = [h for h in hosts if h["domains"] == ["*"]]
    assert any_host["routes"][-1]["name"] == "no-route"
    return list(any_host["routes"][:-1])


def test_a_pool_backend_goes_through_its_picker_to_the_endpoint_it_names() -> None:
    (entry,) = only_host(envoy_routes([route()], PICKER, {}))
    assert entry["match"] == {"prefix": "/"}
    assert entry["route"]["cluster"] == "pool/ns/pool"
    grpc = entry["typed_per_filter_config"][EXT_PROC]["overrides"]["grpc_service"]["envoy_grpc"]
    assert grpc["cluster_name"] == "picker/ns/pool"
    clusters = {c["name"]: c for c in clusters_config(PICKER, {})}
    assert clusters["pool/ns/pool"]["type"] == "ORIGINAL_DST"
    assert clusters["pool/ns/pool"]["original_dst_lb_config"]["http_header_name"] == DESTINATION_HEADER
    picker = clusters["picker/ns/pool"]
    address = picker["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("127.0.0.1", 40001)
    assert "transport_socket" in picker, "the GIE picker serves gRPC over TLS by default"
    plain = clusters_config({("ns", "pool"): PickerTarget("127.0.0.1", 1, tls=False)}, {})
    assert all("transport_socket" not in c for c in plain)


def test_a_pool_without_a_serving_picker_gets_a_503_saying_why() -> None:
    pickers = {("ns", "pool"): PickerTarget(unavailable="endpoint picker pod p is not serving yet")}
    (entry,) = only_host(envoy_routes([route()], pickers, {}))
    assert entry["direct_response"]["status"] == 503
    body = json.loads(entry["direct_response"]["body"]["inline_string"])
    assert body["error"]["message"] == "InferencePool ns/pool: endpoint picker pod p is not serving yet"
    assert clusters_config(pickers, {}) == [], "no cluster for a picker that does not serve"


def test_unresolved_or_missing_backends_get_a_500() -> None:
    service = {"name": "missing", "port": 80}
    (unresolved,) = only_host(envoy_routes([route(rules=[{"backendRefs": [service]}])], {}, {}))
    (empty,) = only_host(envoy_routes([route(rules=[{}])], {}, {}))
    assert unresolved["direct_response"]["status"] == empty["direct_response"]["status"] == 500


def test_service_backends_are_weighted_and_skip_the_picker() -> None:
    refs = [{"name": "a", "port": 80, "weight": 3}, {"name": "b", "port": 80}]
    services = {("ns", "a", 80): [("127.1.1.1", 8080)], ("ns", "b", 80): [("127.1.1.2", 8080)]}
    (entry,) = only_host(envoy_routes([route(rules=[{"backendRefs": refs}])], {}, services))
    weighted = entry["route"]["weighted_clusters"]["clusters"]
    assert weighted == [{"name": "service/ns/a/80", "weight": 3}, {"name": "service/ns/b/80", "weight": 1}]
    assert entry["typed_per_filter_config"][EXT_PROC]["disabled"] is True


def test_redirects_answer_without_a_backend() -> None:
    redirect = {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    (entry,) = only_host(envoy_routes([route(rules=[{"filters": [redirect]}])], {}, {}))
    assert entry["redirect"] == {"scheme_redirect": "https", "response_code": "MOVED_PERMANENTLY"}
    assert "route" not in entry


def test_matches_follow_gateway_api_precedence() -> None:
    older = route(
        "older",
        rules=[{"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}], "backendRefs": [POOL]}],
        created="2025-01-01T00:00:00Z",
    )
    newer = route(
        "newer",
        rules=[
            {"matches": [{"path": {"type": "Exact", "value": "/v1/models"}}], "backendRefs": [POOL]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v1/chat"}}], "backendRefs": [POOL]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}], "backendRefs": [POOL]},
        ],
    )
    names = [e["name"] for e in only_host(envoy_routes([newer, older], PICKER, {}))]
    assert names == [
        "ns/newer/rule/0/match/0",  # exact first
        "ns/newer/rule/1/match/0",  # then the longest prefix
        "ns/older/rule/0/match/0",  # equal prefixes: the oldest route wins
        "ns/newer/rule/2/match/0",
    ]


def test_prefixes_match_whole_path_segments_and_headers_methods_queries_are_kept() -> None:
    match = {
        "path": {"type": "PathPrefix", "value": "/v1/"},
        "headers": [{"name": "X-Model", "value": "qwen"}],
        "method": "POST",
        "queryParams": [{"name": "debug", "type": "RegularExpression", "value": "1|true"}],
    }
    assert route_match(match) == {
        "path_separated_prefix": "/v1",
        "headers": [
            {"name": "x-model", "string_match": {"exact": "qwen"}},
            {"name": ":method", "string_match": {"exact": "POST"}},
        ],
        "query_parameters": [{"name": "debug", "string_match": {"safe_regex": {"regex": "1|true"}}}],
    }


def test_route_hostnames_get_their_own_virtual_host_and_hostless_routes_go_everywhere() -> None:
    named = route("named", hostnames=["llm.example.com"])
    hosts = envoy_routes([named, route("any")], PICKER, {})
    by_name = {h["name"]: [e["name"].split("/")[1] for e in h["routes"][:-1]] for h in hosts}
    assert by_name == {"llm.example.com": ["named", "any"], "any": ["any"]}


def test_timeouts_come_from_the_rule_and_llm_requests_are_not_cut_at_envoys_default() -> None:
    (default,) = only_host(envoy_routes([route()], PICKER, {}))
    assert default["route"]["timeout"] == "0s", "Envoy's 15 s default would cut long generations"
    timed = route(rules=[{"backendRefs": [POOL], "timeouts": {"request": "5m", "backendRequest": "1m30s"}}])
    (entry,) = only_host(envoy_routes([timed], PICKER, {}))
    assert entry["route"]["timeout"] == "300s"


@given(
    hours=st.integers(0, 99),
    minutes=st.integers(0, 59),
    seconds=st.integers(0, 59),
    millis=st.integers(0, 999),
)
def test_gateway_api_durations_convert_to_seconds(hours: int, minutes: int, seconds: int, millis: int) -> None:
    text = f"{hours}h{minutes}m{seconds}s{millis}ms"
    milliseconds = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
    assert round(float(str(_duration(text))[:-1]) * 1000) == milliseconds


def test_one_listener_per_http_listener_of_a_gateway_with_an_address() -> None:
    gateway = {
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "tls", "port": 443, "protocol": "HTTPS"},
            ]
        },
    }
    listeners = listeners_for({("ns", "gw"): gateway}, {("ns", "gw"): "127.9.0.5"}, {("ns", "gw"): [route()]})
    assert [(ls.name, ls.address, ls.port) for ls in listeners] == [("http", "127.9.0.5", 80)]
    assert listeners_for({("ns", "gw"): gateway}, {}, {}) == [], "no address, nothing to listen on"


def test_the_picker_filter_fails_closed_and_streams_bodies() -> None:
    listener = Listener(("ns", "gw"), "http", "127.9.0.5", 80, (route(),))
    config = listener_config(listener, PICKER, {}, "/tmp/access.log")
    manager = config["filter_chains"][0]["filters"][0]["typed_config"]
    ext_proc = next(f for f in manager["http_filters"] if f["name"] == EXT_PROC)["typed_config"]
    assert ext_proc["failure_mode_allow"] is False
    assert ext_proc["processing_mode"]["request_body_mode"] == "FULL_DUPLEX_STREAMED"
    assert manager["http_filters"][-1]["name"] == "envoy.filters.http.router"
    assert config["address"]["socket_address"] == {"address": "127.9.0.5", "port_value": 80}


def test_a_request_no_route_matches_gets_a_404_that_says_why() -> None:
    for host in envoy_routes([route(hostnames=["a.example"])], PICKER, {}):
        last = host["routes"][-1]
        assert last["match"] == {"prefix": "/"}
        assert last["direct_response"]["status"] == 404
        assert "model" in json.loads(last["direct_response"]["body"]["inline_string"])["error"]["message"]


def test_the_body_based_router_runs_first_for_every_route_and_fails_open() -> None:
    listener = Listener(("ns", "gw"), "http", "127.9.0.5", 80, (route(),))
    bbr = PickerTarget("127.0.0.1", 40100, tls=True)
    manager = listener_config(listener, PICKER, {}, "/tmp/a.log", bbr)["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in manager["http_filters"]]
    assert names == ["fusioninfer.body-based-router", EXT_PROC, "envoy.filters.http.router"]
    body_router = manager["http_filters"][0]["typed_config"]
    assert body_router["failure_mode_allow"] is True, "a body without a model is for the routes to answer"
    assert body_router["processing_mode"]["request_body_mode"] == "FULL_DUPLEX_STREAMED"
    clusters = {c["name"] for c in clusters_config(PICKER, {}, bbr)}
    assert "body-based-router" in clusters
