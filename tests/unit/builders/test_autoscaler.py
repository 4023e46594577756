"""Autoscaling per role: the autoscaler objects, who owns the replica count, and the rules."""

from __future__ import annotations

from typing import Any

import pytest
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, BuildResult, Capabilities, build

HPA_METRIC = {
    "type": "Pods",
    "pods": {"metric": {"name": "vllm:num_requests_waiting"}, "target": {"type": "AverageValue", "averageValue": "5"}},
}
KEDA_TRIGGER = {
    "type": "prometheus",
    "metadata": {
        "serverAddress": "http://prometheus:9090",
        "query": "sum(vllm:num_requests_waiting)",
        "threshold": "5",
    },
}


def render(doc: dict[str, Any], **options: Any) -> BuildResult:
    options.setdefault("capabilities", Capabilities(server_version=(1, 33)))
    return build(parse(doc), BuildOptions(**options))


def find(result: BuildResult, kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in result.objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def test_an_hpa_scales_the_deployment_which_no_longer_carries_replicas() -> None:
    scaling = {
        "minReplicas": 2,
        "maxReplicas": 8,
        "metrics": [HPA_METRIC],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    }
    result = render(
        InferenceServiceWrapper().namespace("ns").worker(replicas=3).autoscaling("inference", scaling).obj()
    )
    hpa = find(result, "HorizontalPodAutoscaler", "svc-inference")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc-inference"},
        "minReplicas": 2,
        "maxReplicas": 8,
        "metrics": [HPA_METRIC],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    }
    assert hpa["metadata"]["labels"]["fusioninfer.io/service"] == "svc"
    assert "replicas" not in find(result, "Deployment", "svc-inference")["spec"], "the HPA owns it"
    plain = render(InferenceServiceWrapper().namespace("ns").worker(replicas=3).obj())
    assert find(plain, "Deployment", "svc-inference")["spec"]["replicas"] == 3, "replicas is back without it"
    assert not [o for o in plain.objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_keda_scales_a_leaderworkerset_to_zero() -> None:
    scaling = {"provider": "keda", "minReplicas": 0, "maxReplicas": 4, "triggers": [KEDA_TRIGGER]}
    result = render(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker(multinode={"nodeCount": 2})
        .autoscaling("inference", scaling)
        .obj()
    )
    scaled = find(result, "ScaledObject", "svc-inference")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "svc-inference"
    }  # fmt: skip
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 4)
    assert "replicas" not in find(result, "LeaderWorkerSet", "svc-inference")["spec"]


def test_without_keda_the_scaled_object_is_reported_missing() -> None:
    scaling = {"provider": "keda", "maxReplicas": 4, "triggers": [KEDA_TRIGGER]}
    result = render(
        InferenceServiceWrapper().namespace("ns").worker().autoscaling("inference", scaling).obj(),
        capabilities=Capabilities(keda=False),
    )
    assert not [o for o in result.objects if o["kind"] == "ScaledObject"]
    (notice,) = [n for n in result.notices if n.condition == "PrerequisitesMet"]
    assert "scaledobjects.keda.sh" in notice.message


def test_prefill_follows_the_live_decode_count_in_proportion() -> None:
    doc = (
        InferenceServiceWrapper()
        .namespace("ns")
        .prefiller()
        .decoder()
        .autoscaling("prefill", {"ratioTo": {"role": "decode", "ratio": "1:2"}})
        .autoscaling("decode", {"maxReplicas": 10, "metrics": [HPA_METRIC]})
        .obj()
    )
    assert find(render(doc), "Deployment", "svc-prefill")["spec"]["replicas"] == 1, "before decode exists: its min"
    for live, expected in ((1, 1), (2, 1), (3, 2), (7, 4), (10, 5), (0, 0)):
        result = render(doc, live_replicas={"svc-decode": live})
        assert find(result, "Deployment", "svc-prefill")["spec"]["replicas"] == expected, live
    assert [o["metadata"]["name"] for o in render(doc).objects if o["kind"] == "HorizontalPodAutoscaler"] == [
        "svc-decode"
    ]


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        parse(doc)
    return [str(e) for e in caught.value.errors]


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        ({"minReplicas": 5, "maxReplicas": 2, "metrics": [HPA_METRIC]}, "autoscaling.minReplicas: Invalid value: 5"),
        ({"minReplicas": 0, "maxReplicas": 2, "metrics": [HPA_METRIC]}, "scaling to zero needs provider: keda"),
        ({"maxReplicas": 2}, "autoscaling.metrics: Required value"),
        ({"maxReplicas": 2, "metrics": [HPA_METRIC], "triggers": [KEDA_TRIGGER]}, "autoscaling.triggers: Forbidden"),
        ({"provider": "keda", "maxReplicas": 2, "metrics": [HPA_METRIC]}, "autoscaling.metrics: Forbidden"),
        ({"provider": "keda", "maxReplicas": 2}, "autoscaling.triggers: Required value"),
        ({"metrics": [HPA_METRIC]}, "autoscaling.maxReplicas: Required value"),
        ({"ratioTo": {"role": "nope", "ratio": "1:2"}}, "autoscaling.ratioTo.role: Invalid value"),
        ({"ratioTo": {"role": "inference", "ratio": "1:2"}}, "not another serving role"),
    ],
)
def test_bad_autoscaling_is_refused_with_its_path(scaling: dict[str, Any], message: str) -> None:
    found = errors(InferenceServiceWrapper().namespace("ns").worker().autoscaling("inference", scaling).obj())
    assert any(message in e and e.startswith("spec.roles[0].autoscaling") for e in found), found


def test_a_ratio_must_follow_an_autoscaled_role_and_sets_nothing_else() -> None:
    ratio = {"ratioTo": {"role": "decode", "ratio": "1:2"}, "maxReplicas": 3}
    doc = InferenceServiceWrapper().namespace("ns").prefiller().decoder().autoscaling("prefill", ratio).obj()
    found = errors(doc)
    assert any("'decode' is not autoscaled" in e for e in found), found
    assert any(e.startswith("spec.roles[0].autoscaling.maxReplicas: Forbidden") for e in found), found


def test_autoscaling_on_the_router_is_refused() -> None:
    router = {"name": "router", "componentType": "router", "autoscaling": {"maxReplicas": 2}}
    assert any(
        "autoscaling" in e for e in errors(InferenceServiceWrapper().namespace("ns").role(router).worker().obj())
    )
