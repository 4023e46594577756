"""The router role's objects: picker RBAC/config/Deployment/Service, InferencePool, HTTPRoute, Gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from tests.support.wrappers import InferenceServiceWrapper, serving_role

from fusioninfer.api import naming
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import build, router
from fusioninfer.builders.context import BuildContext, BuildOptions, Capabilities, Manifest, Notice
from fusioninfer.builders.epp import GIE_EPP_IMAGE, LLMD_EPP_IMAGE
from fusioninfer.builders.kinds import child_kind
from fusioninfer.builders.podparts import PodPart
from fusioninfer.builders.podtemplate import serving_pod_template

VLLM = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B"]}
SGLANG = {
    "name": "sglang",
    "image": "lmsysorg/sglang:v0.5.3",
    "command": ["python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--port", "30000"],
}


# The serving roles behind the router (one vLLM worker unless a test is about them).
WORKER = serving_role("inference", "worker", container=VLLM)
PD_ROLES = [serving_role("prefill", "prefiller", container=VLLM), serving_role("decode", "decoder", container=VLLM)]


@dataclass
class Built:
    objects: list[Manifest]
    notices: list[Notice]

    def get(self, kind: str, name: str | None = None) -> Manifest:
        found = [o for o in self.objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
        assert len(found) == 1, f"expected one {kind} {name}, got {[o['metadata']['name'] for o in found]}"
        return found[0]

    def kinds(self) -> list[tuple[str, str]]:
        return [(o["kind"], o["metadata"]["name"]) for o in self.objects]

    @property
    def picker(self) -> dict[str, Any]:
        return dict(self.get("Deployment", "svc-epp")["spec"]["template"]["spec"]["containers"][0])

    @property
    def config(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.get("ConfigMap")["data"]["config.yaml"]))


def _build(service: InferenceServiceWrapper | InferenceService, **options: Any) -> Built:
    isvc = parse(service.obj()) if isinstance(service, InferenceServiceWrapper) else service
    ctx = BuildContext(isvc, BuildOptions(**options))
    return Built(router.build(ctx), ctx.notices)


ROUTER_OBJECTS = [
    ("ServiceAccount", "svc-epp"),
    ("Role", "svc-epp"),
    ("RoleBinding", "svc-epp"),
    ("ConfigMap", "svc-epp-config"),
    ("Deployment", "svc-epp"),
    ("Service", "svc-epp"),
    ("InferencePool", "svc-pool"),
    ("HTTPRoute", "svc-route"),
]


# --- objects and names --------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["prefix-cache", "kv-cache-utilization", "queue-size", "lora-affinity"])
def test_gie_strategies_emit_the_eight_objects_with_the_gie_image(strategy: str) -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router(strategy).role(WORKER))
    assert b.kinds() == ROUTER_OBJECTS
    assert b.picker["image"] == GIE_EPP_IMAGE
    names = {
        naming.epp_name("svc"),
        naming.epp_config_name("svc"),
        naming.pool_name("svc"),
        naming.route_name("svc"),
    }
    assert {name for _, name in b.kinds()} == names
    for obj in b.objects:
        child_kind(obj["apiVersion"], obj["kind"])  # every kind is in the child-kind table
        assert obj["metadata"]["namespace"] == "ns"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "fusioninfer"
        assert obj["metadata"]["labels"]["fusioninfer.io/service"] == "svc"


def test_pd_strategy_uses_the_llmd_image() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router("pd-disaggregation").roles(*PD_ROLES))
    assert b.kinds() == ROUTER_OBJECTS
    assert b.picker["image"] == LLMD_EPP_IMAGE
    assert b.config["plugins"][-1]["type"] == "disagg-profile-handler"
    assert b.notices == []


def test_no_router_no_objects() -> None:
    assert _build(InferenceServiceWrapper().namespace("ns").role(WORKER)).objects == []


def test_build_is_deterministic() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation", parent=None, gateway={"className": "kgateway"})
        .roles(*PD_ROLES)
        .obj()
    )
    assert build(isvc).objects == build(isvc).objects


# --- images -------------------------------------------------------------------------------------
def test_operator_wide_images_are_the_defaults_overrides() -> None:
    gie = _build(
        InferenceServiceWrapper().namespace("ns").router().role(WORKER),
        epp_image="mirror/epp:1",
        pd_epp_image="mirror/llmd:1",
    )
    assert gie.picker["image"] == "mirror/epp:1"
    pd = _build(
        InferenceServiceWrapper().namespace("ns").router("pd-disaggregation").roles(*PD_ROLES),
        epp_image="mirror/epp:1",
        pd_epp_image="mirror/llmd:1",
    )
    assert pd.picker["image"] == "mirror/llmd:1"


def test_load_aware_scorer_switches_to_the_llmd_image() -> None:
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(endpointPicker={"plugins": {"loadAwareScorer": {"weight": 1}}})
        .role(WORKER)
    )
    assert b.picker["image"] == LLMD_EPP_IMAGE
    assert b.notices == []


def test_explicit_image_wins_but_a_gie_image_for_llmd_plugins_is_reported() -> None:
    picker = {"image": "mine/epp:2", "plugins": {"loadAwareScorer": {"weight": 1}}}
    b = _build(InferenceServiceWrapper().namespace("ns").router(endpointPicker=picker).role(WORKER))
    assert b.picker["image"] == "mine/epp:2"
    assert b.notices == []
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation", endpointPicker={"image": GIE_EPP_IMAGE})
        .roles(*PD_ROLES)
    )
    assert b.picker["image"] == GIE_EPP_IMAGE
    [notice] = b.notices
    assert notice.reason == "PickerImageMismatch"
    assert "disagg-profile-handler" in notice.message
    assert LLMD_EPP_IMAGE in notice.message


# --- picker Deployment, Service, RBAC -----------------------------------------------------------
def test_picker_deployment() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router().role(WORKER))
    dep = b.get("Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == {"fusioninfer.io/service": "svc", "fusioninfer.io/role-name": "router"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "svc-epp"
    assert pod["volumes"] == [{"name": "epp-config", "configMap": {"name": "svc-epp-config"}}]
    c = b.picker
    assert c["args"] == [
        "--pool-name=svc-pool",
        "--pool-namespace=ns",
        "--config-file=/config/config.yaml",
        "--metrics-endpoint-auth=false",
        "--kv-cache-usage-percentage-metric=vllm:kv_cache_usage_perc",
    ]
    assert {(p["name"], p["containerPort"]) for p in c["ports"]} == {
        ("grpc", 9002),
        ("grpc-health", 9003),
        ("metrics", 9090),
    }
    assert c["livenessProbe"]["grpc"] == {"port": 9003, "service": "inference-extension"}
    assert c["readinessProbe"]["grpc"] == {"port": 9003, "service": "inference-extension"}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"]}
    assert env == {"NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    assert c["volumeMounts"] == [{"name": "epp-config", "mountPath": "/config", "readOnly": True}]
    assert c["resources"]["requests"]
    assert not any("secure-serving" in a for a in c["args"])
    # The picker pods are not pool endpoints.
    assert "fusioninfer.io/serving" not in spec["template"]["metadata"]["labels"]


def test_config_change_rolls_the_picker_and_nothing_else_does() -> None:
    def annotation(strategy: str | None = None, **router: Any) -> str:
        dep = _build(InferenceServiceWrapper().namespace("ns").router(strategy, **router).role(WORKER)).get(
            "Deployment"
        )
        return str(dep["spec"]["template"]["metadata"]["annotations"]["fusioninfer.io/epp-config-hash"])

    base = annotation("prefix-cache")
    assert len(base) == 64
    assert annotation("prefix-cache") == base
    assert annotation("queue-size") != base
    weighted = {"plugins": {"prefixCacheScorer": {"weight": 2}, "queueScorer": {"weight": 1}}}
    assert annotation(endpointPicker=weighted) not in (base, annotation("queue-size"))
    assert annotation("prefix-cache", parent="other") == base


def test_endpoint_picker_overrides_and_router_template_merge() -> None:
    router = {
        "endpointPicker": {
            "replicas": 1,
            "extraArgs": ["-v=4", "--kv-cache-usage-percentage-metric=custom"],
            "resources": {"limits": {"cpu": "2"}},
        },
        "template": {
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
        },
    }
    b = _build(InferenceServiceWrapper().namespace("ns").router(**router).role(WORKER))
    template = b.get("Deployment")["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["annotations"]["note"] == "x"
    assert template["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert template["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}]
    c = b.picker
    assert c["args"][-2:] == ["-v=4", "--kv-cache-usage-percentage-metric=custom"], "extra args last: they win"
    assert c["resources"] == {"limits": {"cpu": "2"}}


def test_picker_rbac_is_least_privilege() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router().role(WORKER))
    assert b.get("Role")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["inference.networking.k8s.io"],
            "resources": ["inferencepools"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["inference.networking.x-k8s.io"],
            "resources": ["inferenceobjectives", "inferencepools"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    binding = b.get("RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "svc-epp"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "svc-epp", "namespace": "ns"}]
    assert all(o["kind"] not in ("ClusterRole", "ClusterRoleBinding") for o in b.objects)


def test_replicas_above_one_turn_on_leader_election_with_its_rbac_and_probes() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router(endpointPicker={"replicas": 2}).role(WORKER))
    assert b.get("Deployment")["spec"]["replicas"] == 2
    assert "--ha-enable-leader-election=true" in b.picker["args"]
    resources = [r for rule in b.get("Role")["rules"] for r in rule["resources"]]
    assert "leases" in resources
    assert "events" in resources
    assert b.picker["livenessProbe"]["grpc"]["service"] == "liveness"
    assert b.picker["readinessProbe"]["grpc"]["service"] == "readiness"


@dataclass(frozen=True)
class OldCluster(Capabilities):
    server_version: tuple[int, int] = (1, 20)


def test_an_apiserver_without_grpc_probes_gets_tcp_probes() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router().role(WORKER), capabilities=OldCluster())
    assert b.picker["livenessProbe"]["tcpSocket"] == {"port": 9003}
    assert "grpc" not in b.picker["readinessProbe"]


def test_picker_service_ports_all_say_tcp() -> None:
    svc = _build(InferenceServiceWrapper().namespace("ns").router().role(WORKER)).get("Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"] == {"fusioninfer.io/service": "svc", "fusioninfer.io/role-name": "router"}
    assert svc["spec"]["ports"] == [
        {"name": "grpc-ext-proc", "port": 9002, "targetPort": 9002, "protocol": "TCP", "appProtocol": "http2"},
        {"name": "grpc-health", "port": 9003, "targetPort": 9003, "protocol": "TCP"},
        {"name": "http-metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
    ]


# --- engine-aware flags -------------------------------------------------------------------------
def test_sglang_metric_flags() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router().worker(container=SGLANG))
    args = b.picker["args"]
    assert "--total-queued-requests-metric=sglang:num_queue_reqs" in args
    assert "--kv-cache-usage-percentage-metric=sglang:token_usage" in args
    assert "--lora-info-metric=" in args
    assert not any("vllm:" in a for a in args)


def test_explicit_engine_wins_over_detection() -> None:
    opaque = {"name": "server", "image": "registry.example/llm:1", "args": ["--port", "30000"]}
    b = _build(InferenceServiceWrapper().namespace("ns").router().worker(container=opaque, engine="sglang"))
    assert "--kv-cache-usage-percentage-metric=sglang:token_usage" in b.picker["args"]
    assert _build(InferenceServiceWrapper().namespace("ns").router().worker(container=opaque)).picker["args"][-1] == (
        "--kv-cache-usage-percentage-metric=vllm:kv_cache_usage_perc"
    )


def test_lora_affinity_without_enable_lora_is_reported() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router("lora-affinity").role(WORKER))
    assert [n.reason for n in b.notices] == ["LoRAMetricUnavailable"]
    lora = {**VLLM, "args": [*VLLM["args"], "--enable-lora", "--max-loras", "4"]}
    assert (
        _build(InferenceServiceWrapper().namespace("ns").router("lora-affinity").worker(container=lora)).notices == []
    )


# --- InferencePool ------------------------------------------------------------------------------
def _pool(b: Built) -> dict[str, Any]:
    return dict(b.get("InferencePool")["spec"])


def test_pool_selects_serving_pods_and_references_the_picker_explicitly() -> None:
    spec = _pool(_build(InferenceServiceWrapper().namespace("ns").router().role(WORKER)))
    assert spec == {
        "selector": {"matchLabels": {"fusioninfer.io/service": "svc", "fusioninfer.io/serving": "true"}},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {
            "kind": "Service",
            "name": "svc-epp",
            "port": {"number": 9002},
            "failureMode": "FailClose",
        },
    }


def _selected(selector: dict[str, str], template: Manifest) -> bool:
    labels = template["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("multinode", [False, True])
def test_pool_selector_matches_exactly_the_http_serving_pods(multinode: bool) -> None:
    extra = {"multinode": {"nodeCount": 2}} if multinode else {}
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container=VLLM, **extra)
        .decoder(container=VLLM, **extra)
        .obj()
    )
    ctx = BuildContext(isvc)
    selector = _pool(_build(isvc))["selector"]["matchLabels"]
    for role in isvc.serving_roles:
        parts = [PodPart.LEADER, PodPart.WORKER] if multinode else [PodPart.SINGLE]
        for part in parts:
            template = serving_pod_template(ctx, role, part)
            assert _selected(selector, template) is (part is not PodPart.WORKER), (role.name, part)
    picker_template = _build(isvc).get("Deployment")["spec"]["template"]
    assert not _selected(selector, picker_template)


def test_pool_target_port_comes_from_the_serving_container() -> None:
    sglang = _pool(_build(InferenceServiceWrapper().namespace("ns").router().worker(container=SGLANG)))
    assert sglang["targetPorts"] == [{"number": 30000}]
    named = {**VLLM, "ports": [{"name": "metrics", "containerPort": 9100}, {"name": "http", "containerPort": 8080}]}
    assert _pool(_build(InferenceServiceWrapper().namespace("ns").router().worker(container=named)))["targetPorts"] == [
        {"number": 8080}
    ]


def test_pd_pool_port_is_the_prefill_port_and_decode_ports_do_not_conflict() -> None:
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller(container={**VLLM, "args": [*VLLM["args"], "--port", "8100"]})
        .decoder(container={**VLLM, "args": [*VLLM["args"], "--port", "8300"]})
    )
    assert _pool(b)["targetPorts"] == [{"number": 8100}]
    assert b.notices == []


def test_conflicting_serving_ports_are_reported() -> None:
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation")
        .prefiller("prefill-a", container={**VLLM, "args": ["--port", "8000"]})
        .prefiller("prefill-b", container={**VLLM, "args": ["--port", "8001"]})
        .decoder(container=VLLM)
    )
    assert _pool(b)["targetPorts"] == [{"number": 8000}]
    assert [n.reason for n in b.notices] == ["ConflictingServingPorts"]


# --- HTTPRoute ----------------------------------------------------------------------------------
POOL_BACKEND = {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "svc-pool", "weight": 1}


def _route(httproute: dict[str, Any]) -> tuple[dict[str, Any], list[Notice]]:
    """The HTTPRoute of a router whose `httproute` is exactly this (no route to `gw` added)."""
    b = _build(InferenceServiceWrapper().namespace("ns").router(parent=None, httproute=httproute).role(WORKER))
    return dict(b.get("HTTPRoute")["spec"]), b.notices


def test_route_defaults() -> None:
    spec, notices = _route({"parentRefs": [{"name": "inference-gateway"}]})
    assert spec == {
        "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "inference-gateway"}],
        "rules": [
            {
                # The model the service serves, from the header the body-based router sets.
                "matches": [
                    {
                        "headers": [{"type": "Exact", "name": "X-Gateway-Model-Name", "value": "Qwen/Qwen3-8B"}],
                        "path": {"type": "PathPrefix", "value": "/"},
                    }
                ],
                "backendRefs": [POOL_BACKEND],
                "timeouts": {"request": "300s"},
            }
        ],
    }
    assert notices == []


def test_route_keeps_user_parent_refs_hostnames_matches_filters_timeouts_and_names() -> None:
    user = {
        "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
        "hostnames": ["llm.example.com"],
        "rules": [
            {
                "name": "chat",
                "matches": [{"path": {"type": "Exact", "value": "/v1/chat/completions"}}],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "1"}]}}
                ],
                "timeouts": {"request": "600s", "backendRequest": "590s"},
            },
            {"matches": [{"headers": [{"name": "x-model", "value": "qwen"}]}]},
        ],
    }
    spec, _ = _route(user)
    assert spec["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw",
            "namespace": "infra",
            "sectionName": "https",
        }
    ]
    assert spec["hostnames"] == ["llm.example.com"]
    first, second = spec["rules"]
    assert first["name"] == "chat"
    assert first["matches"] == [{"path": {"type": "Exact", "value": "/v1/chat/completions"}}]
    assert first["filters"] == user["rules"][0]["filters"]  # type: ignore[index]
    assert first["timeouts"] == {"request": "600s", "backendRequest": "590s"}
    assert first["backendRefs"] == [POOL_BACKEND]
    # A header-only match gets the path the apiserver would default, so SSA sees no drift.
    assert second["matches"] == [
        {"headers": [{"name": "x-model", "value": "qwen"}], "path": {"type": "PathPrefix", "value": "/"}}
    ]
    assert second["backendRefs"] == [POOL_BACKEND]
    assert second["timeouts"] == {"request": "300s"}


def test_route_parent_ref_defaults_never_override_the_user() -> None:
    mesh = {"group": "", "kind": "Service", "name": "svc-mesh", "port": 80}
    spec, _ = _route({"parentRefs": [mesh]})
    assert spec["parentRefs"] == [mesh]


def test_zero_timeout_is_kept_but_reported_and_missing_parents_are_reported() -> None:
    spec, notices = _route({"rules": [{"timeouts": {"request": "0s"}}]})
    assert spec["rules"][0]["timeouts"] == {"request": "0s"}
    assert "parentRefs" not in spec
    assert sorted(n.reason for n in notices) == ["RouteWithoutParent", "ZeroRequestTimeout"]


@pytest.mark.parametrize(
    ("backend", "request_timeout"), [("600s", "600s"), ("10m1s", "10m1s"), ("30s", "300s"), ("5m", "300s")]
)
def test_added_request_timeout_is_never_shorter_than_the_backend_request(backend: str, request_timeout: str) -> None:
    """The CRD rejects `backendRequest` > `request`: the request timeout we add covers it."""
    spec, _ = _route({"parentRefs": [{"name": "gw"}], "rules": [{"timeouts": {"backendRequest": backend}}]})
    assert spec["rules"][0]["timeouts"] == {"backendRequest": backend, "request": request_timeout}


def test_redirect_rule_gets_no_backend_ref() -> None:
    """A RequestRedirect rule answers the client itself; the CRD forbids backendRefs beside it."""
    redirect = {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
    spec, _ = _route({"parentRefs": [{"name": "gw"}], "rules": [{"filters": [redirect]}, {"matches": [{}]}]})
    first, second = spec["rules"]
    assert "backendRefs" not in first
    assert first["filters"] == [redirect]
    assert second["backendRefs"][0]["kind"] == "InferencePool"


# --- Gateway ------------------------------------------------------------------------------------
def test_gateway_block_creates_a_gateway_and_the_route_attaches_to_it() -> None:
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(parent="shared-gw", gateway={"className": "istio", "listenerPort": 8080, "serviceType": "ClusterIP"})
        .role(WORKER)
    )
    gw = b.get("Gateway", "svc-gateway")
    assert gw["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gw["spec"] == {
        "gatewayClassName": "istio",
        "listeners": [
            {"name": "http", "port": 8080, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}
        ],
    }
    assert gw["metadata"]["annotations"] == {"networking.istio.io/service-type": "ClusterIP"}
    assert b.get("HTTPRoute")["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared-gw"},
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "svc-gateway", "sectionName": "http"},
    ]
    assert b.notices == []
    assert [k for k, _ in b.kinds()][-2:] == ["Gateway", "HTTPRoute"]


def test_gateway_defaults_and_non_istio_service_type_notice() -> None:
    b = _build(
        InferenceServiceWrapper().namespace("ns").router(parent=None, gateway={"className": "kgateway"}).role(WORKER)
    )
    gw = b.get("Gateway")
    assert gw["spec"]["listeners"][0]["port"] == 80
    assert "annotations" not in gw["metadata"]
    assert b.notices == []
    b = _build(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(parent=None, gateway={"className": "kgateway", "serviceType": "LoadBalancer"})
        .role(WORKER)
    )
    assert [n.reason for n in b.notices] == ["GatewayServiceTypeNotPortable"]


# --- prerequisites ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("caps", "expected", "names"),
    [
        (
            Capabilities(gateway_api=False),
            [k for k in ROUTER_OBJECTS if k[0] != "HTTPRoute"],
            ["Gateway API v1.4.1", "standard-install.yaml"],
        ),
        (Capabilities(inference_pool=False), [], ["InferencePool", "v1.2.1/manifests.yaml"]),
        (
            Capabilities(inference_objective=False),
            [("InferencePool", "svc-pool"), ("HTTPRoute", "svc-route")],
            ["InferenceObjective", "v1.2.1/manifests.yaml"],
        ),
        (
            Capabilities(gateway_api=False, inference_pool=False, inference_objective=False),
            [],
            ["Gateway API v1.4.1", "Inference Extension v1.2.1"],
        ),
    ],
)
def test_missing_apis_leave_objects_out_with_one_notice(
    caps: Capabilities, expected: list[tuple[str, str]], names: list[str]
) -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router(parent=None, gateway={"className": "kgateway"})
        .role(WORKER)
        .obj()
    )
    b = _build(isvc, capabilities=caps)
    assert [k for k in b.kinds() if k[0] != "Gateway"] == expected
    assert any(k == "Gateway" for k, _ in b.kinds()) is caps.gateway_api
    [notice] = b.notices
    assert (notice.condition, notice.reason) == ("PrerequisitesMet", "MissingAPIs")
    for name in names:
        assert name in notice.message
    # The serving roles still deploy.
    assert any(
        o["kind"] == "Deployment" and o["metadata"]["name"] == "svc-inference"
        for o in build(isvc, BuildOptions(capabilities=caps)).objects
    )


def test_all_apis_present_no_prerequisite_notice() -> None:
    assert not [
        n
        for n in _build(
            InferenceServiceWrapper()
            .namespace("ns")
            .router(parent=None, gateway={"className": "kgateway"})
            .role(WORKER)
        ).notices
        if n.condition == "PrerequisitesMet"
    ]


def test_disaggregated_service_with_a_non_pd_strategy_is_reported() -> None:
    b = _build(InferenceServiceWrapper().namespace("ns").router("prefix-cache").roles(*PD_ROLES))
    assert [n.reason for n in b.notices] == ["NotDisaggregatedRouting"]


def test_raw_config_with_unweighted_scorer_after_picker_is_reported() -> None:
    raw = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins: [{type: max-score-picker}, {type: queue-scorer}]
schedulingProfiles: [{name: default, plugins: [{pluginRef: max-score-picker}, {pluginRef: queue-scorer}]}]
"""
    b = _build(InferenceServiceWrapper().namespace("ns").router(endpointPickerConfig=raw).role(WORKER))
    assert b.get("ConfigMap")["data"]["config.yaml"] == raw
    assert [n.reason for n in b.notices] == ["UnweightedScorer"]
