"""Gang scheduling: when a Volcano PodGroup exists, what it counts, and what the pods carry."""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.schema import validate
from tests.support.wrappers import InferenceServiceWrapper, engine_container, serving_role

from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, BuildResult, Capabilities, Notice, build
from fusioninfer.kube.quantity import Quantity
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
UPSTREAM = BUNDLED_CRD_DIR
VOLCANO_INSTALL = (
    "kubectl apply -f https://raw.githubusercontent.com/volcano-sh/volcano/v1.13.1/installer/volcano-development.yaml"
)
GROUP = "scheduling.k8s.io/group-name"
TASK = "volcano.sh/task-spec"
QUEUE = "scheduling.volcano.sh/queue-name"


def example(name: str) -> InferenceService:
    return parse(yaml.safe_load((EXAMPLES / name).read_text()))


TOPOLOGIES = {
    "single": [serving_role("w", "worker", replicas=2)],
    "multinode": [serving_role("w", "worker", replicas=2, multinode={"nodeCount": 2})],
    "pd": [serving_role("p", "prefiller", replicas=2), serving_role("d", "decoder")],
}


def render(service: InferenceService | InferenceServiceWrapper, **capabilities: bool) -> BuildResult:
    """Build `service` (parsed first when it is a wrapper) with these capabilities."""
    isvc = parse(service.obj()) if isinstance(service, InferenceServiceWrapper) else service
    return build(isvc, BuildOptions(capabilities=Capabilities(**capabilities)))


def podgroups(result: BuildResult) -> list[dict[str, Any]]:
    return [o for o in result.objects if o["kind"] == "PodGroup"]


def serving_pod_templates(result: BuildResult) -> dict[str, list[dict[str, Any]]]:
    """Pod templates of the serving workloads, by role name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in result.objects:
        role_name = obj["metadata"]["labels"].get("fusioninfer.io/role-name")
        if obj["kind"] == "Deployment" and obj["metadata"]["labels"].get("fusioninfer.io/component-type") != "router":
            out.setdefault(role_name, []).append(obj["spec"]["template"])
        elif obj["kind"] == "LeaderWorkerSet":
            lwt = obj["spec"]["leaderWorkerTemplate"]
            out.setdefault(role_name, []).extend([lwt["leaderTemplate"], lwt["workerTemplate"]])
    return out


def annotations(template: dict[str, Any]) -> dict[str, str]:
    return dict(template["metadata"].get("annotations") or {})


# --- the examples -------------------------------------------------------------------------------
def test_story2_pd_multinode_is_one_podgroup_over_both_roles() -> None:
    result = render(example("story2-pd-volcano.yaml"))
    [pg] = podgroups(result)
    assert pg["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert pg["metadata"]["name"] == "qwen-inference-service"
    assert pg["metadata"]["labels"]["fusioninfer.io/service"] == "qwen-inference-service"
    assert pg["spec"] == {
        "minMember": 10,  # prefill 2 x 4 + decode 1 x 2
        "minTaskMember": {"decode-servers": 2, "prefill-servers": 8},
        "minResources": {"nvidia.com/gpu": "72"},  # 8 pods x 8 GPUs + 2 pods x 4 GPUs
        "queue": "default",
    }
    templates = serving_pod_templates(result)
    assert sorted(templates) == ["decode-servers", "prefill-servers"]
    for role_name, parts in templates.items():
        assert len(parts) == 2  # leader and worker
        for template in parts:
            assert template["spec"]["schedulerName"] == "volcano"
            assert annotations(template)[GROUP] == "qwen-inference-service"
            assert annotations(template)[TASK] == role_name


def test_seed_multinode_example_gets_a_podgroup_by_default_when_volcano_is_installed() -> None:
    [pg] = podgroups(render(example("multinode.yaml")))
    assert pg["spec"] == {
        "minMember": 8,
        "minTaskMember": {"inference": 8},
        "minResources": {"nvidia.com/gpu": "64"},
        "queue": "default",
    }


def test_seed_multinode_example_without_volcano_is_left_to_the_default_scheduler_quietly() -> None:
    result = render(example("multinode.yaml"), volcano=False)
    assert podgroups(result) == []
    assert result.notices == []  # Auto only means "if available"
    for template in serving_pod_templates(result)["inference"]:
        assert "schedulerName" not in template["spec"]
        assert GROUP not in annotations(template)


def test_monolithic_single_node_service_has_no_podgroup() -> None:
    result = render(example("monolithic.yaml"))
    assert podgroups(result) == []
    for parts in serving_pod_templates(result).values():
        for template in parts:
            assert "schedulerName" not in template["spec"]
            assert annotations(template).keys().isdisjoint({GROUP, TASK})


# --- when: Auto / Enabled / Disabled x volcano installed or not ---------------------------------
@pytest.mark.parametrize("installed", [True, False])
@pytest.mark.parametrize("scheduler", [None, "volcano"])
@pytest.mark.parametrize("mode", [None, "Enabled", "Disabled"])
@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_when_a_podgroup_is_emitted(topology: str, mode: str | None, scheduler: str | None, installed: bool) -> None:
    scheduling = {k: v for k, v in (("gangScheduling", mode), ("schedulerName", scheduler)) if v is not None}
    service = InferenceServiceWrapper().namespace("ns").roles(*TOPOLOGIES[topology])
    if scheduling:
        service.spec(schedulingStrategy=scheduling)
    result = render(service, volcano=installed)

    explicit = scheduler == "volcano" or mode == "Enabled"
    gang = installed and mode != "Disabled" and (explicit or topology in ("multinode", "pd"))
    assert len(podgroups(result)) == (1 if gang else 0)

    for role_name, parts in serving_pod_templates(result).items():
        for template in parts:
            spec, notes = template["spec"], annotations(template)
            if gang:
                assert spec["schedulerName"] == "volcano"
                assert notes[GROUP] == "svc"
                assert notes[TASK] == role_name
            elif scheduler == "volcano" and installed:
                # Disabled: Volcano schedules each pod alone (its own implicit PodGroup).
                assert spec["schedulerName"] == "volcano"
                assert notes[QUEUE] == "default"
                assert GROUP not in notes
            else:
                # Never `volcano` without Volcano: no scheduler would ever bind the pod.
                assert "schedulerName" not in spec
                assert GROUP not in notes

    missing = [n for n in result.notices if n.reason == "MissingAPIs"]
    if explicit and not installed:
        assert missing == [
            Notice(
                "PrerequisitesMet",
                "MissingAPIs",
                "Volcano (scheduling.volcano.sh/v1beta1 PodGroup) is not installed, so the gang scheduling asked "
                "for in spec.schedulingStrategy is not applied and the pods use the default scheduler; install "
                f"Volcano v1.13.1: {VOLCANO_INSTALL}",
            )
        ]
    else:
        assert missing == []


def test_explicit_request_covers_a_single_node_service_too() -> None:
    [pg] = podgroups(
        render(
            InferenceServiceWrapper()
            .namespace("ns")
            .roles(*TOPOLOGIES["single"])
            .spec(schedulingStrategy={"gangScheduling": "Enabled"})
        )
    )
    assert pg["spec"]["minMember"] == 2
    assert pg["spec"]["minTaskMember"] == {"w": 2}


def test_another_scheduler_turns_auto_gang_scheduling_off() -> None:
    result = render(
        InferenceServiceWrapper()
        .namespace("ns")
        .roles(*TOPOLOGIES["pd"])
        .spec(schedulingStrategy={"schedulerName": "kai-scheduler"})
    )
    assert podgroups(result) == []
    for parts in serving_pod_templates(result).values():
        for template in parts:
            assert template["spec"]["schedulerName"] == "kai-scheduler"
            assert annotations(template).keys().isdisjoint({GROUP, TASK, QUEUE})


def test_a_template_scheduler_is_kept_outside_the_gang_and_overridden_inside_it() -> None:
    own = {"schedulerName": "my-scheduler"}
    outside = render(
        InferenceServiceWrapper()
        .namespace("ns")
        .worker("w", pod_spec=own)
        .spec(schedulingStrategy={"schedulerName": "kai"})
    )
    assert serving_pod_templates(outside)["w"][0]["spec"]["schedulerName"] == "my-scheduler"
    inside = render(InferenceServiceWrapper().namespace("ns").prefiller("p", pod_spec=own).decoder("d"))
    assert serving_pod_templates(inside)["p"][0]["spec"]["schedulerName"] == "volcano"


def test_multinode_roles_without_lws_are_left_out_of_the_gang() -> None:
    # Their pods would never exist, and would hold the decode pods Pending forever.
    result = render(
        InferenceServiceWrapper().namespace("ns").prefiller("p", multinode={"nodeCount": 2}).decoder("d", replicas=3),
        lws=False,
    )
    [pg] = podgroups(result)
    assert pg["spec"]["minMember"] == 3
    assert pg["spec"]["minTaskMember"] == {"d": 3}
    assert [n.reason for n in result.notices] == ["MissingAPIs"]  # the LWS one


def test_router_pods_are_outside_scheduling_strategy() -> None:
    scheduling = {"schedulerName": "volcano", "priorityClassName": "high"}
    service = (
        InferenceServiceWrapper()
        .namespace("ns")
        .router("pd-disaggregation", name="r", parent=None)
        .roles(*TOPOLOGIES["pd"])
        .spec(schedulingStrategy=scheduling)
    )
    result = render(service)
    [epp] = [o for o in result.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "svc-epp"]
    pod = epp["spec"]["template"]
    assert "schedulerName" not in pod["spec"]
    assert "priorityClassName" not in pod["spec"]
    assert GROUP not in annotations(pod)
    [pg] = podgroups(result)
    assert sorted(pg["spec"]["minTaskMember"]) == ["d", "p"]


def test_podgroup_follows_scaling() -> None:
    small = podgroups(render(InferenceServiceWrapper().namespace("ns").prefiller("p").decoder("d")))
    large = podgroups(
        render(InferenceServiceWrapper().namespace("ns").prefiller("p", replicas=4).decoder("d", replicas=2))
    )
    assert small[0]["spec"]["minTaskMember"] == {"d": 1, "p": 1}
    assert large[0]["spec"]["minTaskMember"] == {"d": 2, "p": 4}
    assert large[0]["spec"]["minMember"] == 6


# --- minResources arithmetic --------------------------------------------------------------------
def test_min_resources_are_exact_and_use_limits_only_where_requests_are_absent() -> None:
    prefill = serving_role(
        "p",
        "prefiller",
        replicas=3,
        container=engine_container(
            resources={"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}
        ),
    )
    decode = serving_role(
        "d",
        "decoder",
        replicas=2,
        container=engine_container(
            resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}}
        ),
    )
    [pg] = podgroups(render(InferenceServiceWrapper().namespace("ns").role(prefill).role(decode)))
    assert pg["spec"]["minResources"] == {
        "cpu": "3500m",  # 3 x 500m + 2 x 1 (the request, not the 2-core limit)
        "memory": "11Gi",  # 3 x 1Gi + 2 x 4Gi (limit as request)
        "nvidia.com/gpu": "5",
    }
    assert pg["spec"]["minMember"] == 5
    assert pg["spec"]["minTaskMember"] == {"d": 2, "p": 3}


def test_min_resources_count_every_pod_of_a_multinode_group() -> None:
    worker = serving_role(
        "w",
        "worker",
        replicas=2,
        multinode={"nodeCount": 3},
        container=engine_container(resources={"requests": {"cpu": "250m", "memory": "512Mi"}}),
    )
    [pg] = podgroups(render(InferenceServiceWrapper().namespace("ns").role(worker)))
    assert pg["spec"]["minResources"] == {"cpu": "1500m", "memory": "3Gi"}
    assert pg["spec"]["minMember"] == 6


def test_min_resources_omitted_when_nothing_is_requested() -> None:
    [pg] = podgroups(render(InferenceServiceWrapper().namespace("ns").roles(*TOPOLOGIES["pd"])))
    assert "minResources" not in pg["spec"]


def test_queue_and_priority_class() -> None:
    scheduling = {"queue": "research", "priorityClassName": "high"}
    roles = [serving_role("p", "prefiller"), serving_role("d", "decoder", pod_spec={"priorityClassName": "low"})]
    result = render(InferenceServiceWrapper().namespace("ns").roles(*roles).spec(schedulingStrategy=scheduling))
    [pg] = podgroups(result)
    assert pg["spec"]["queue"] == "research"
    assert pg["spec"]["priorityClassName"] == "high"
    templates = serving_pod_templates(result)
    assert templates["p"][0]["spec"]["priorityClassName"] == "high"
    assert templates["d"][0]["spec"]["priorityClassName"] == "low"  # the template's own wins


def test_no_priority_class_key_unless_asked_for() -> None:
    [pg] = podgroups(render(InferenceServiceWrapper().namespace("ns").roles(*TOPOLOGIES["pd"])))
    assert "priorityClassName" not in pg["spec"]
    for parts in serving_pod_templates(
        render(InferenceServiceWrapper().namespace("ns").roles(*TOPOLOGIES["pd"]))
    ).values():
        assert "priorityClassName" not in parts[0]["spec"]


# --- properties ---------------------------------------------------------------------------------
@st.composite
def gang_services(draw: st.DrawFn) -> tuple[InferenceService, dict[str, tuple[int, int, int, int]]]:
    """A P/D or monolithic service with Enabled gang scheduling; per role (replicas, nodes, milli, gpu)."""
    disaggregated = draw(st.booleans())
    names = ["p", "d"] if disaggregated else ["w"]
    components = ["prefiller", "decoder"] if disaggregated else ["worker"]
    shape: dict[str, tuple[int, int, int, int]] = {}
    roles = []
    for name, component in zip(names, components, strict=True):
        replicas = draw(st.integers(min_value=0, max_value=6))
        nodes = draw(st.integers(min_value=1, max_value=4))
        milli = draw(st.integers(min_value=1, max_value=64_000))
        gpus = draw(st.integers(min_value=0, max_value=8))
        shape[name] = (replicas, nodes, milli, gpus)
        res: dict[str, Any] = {"requests": {"cpu": f"{milli}m"}}
        if gpus:
            res["limits"] = {"nvidia.com/gpu": str(gpus)}
        multinode = {"multinode": {"nodeCount": nodes}} if nodes > 1 else {}
        roles.append(
            serving_role(name, component, replicas=replicas, container=engine_container(resources=res), **multinode)
        )
    return parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .roles(*roles)
        .spec(schedulingStrategy={"gangScheduling": "Enabled"})
        .obj()
    ), shape


@settings(max_examples=60, deadline=None)
@given(gang_services())
def test_podgroup_counts_every_pod_exactly(case: tuple[InferenceService, dict[str, tuple[int, int, int, int]]]) -> None:
    isvc, shape = case
    result = render(isvc)
    [pg] = podgroups(result)
    spec = pg["spec"]
    assert spec["minMember"] == sum(spec["minTaskMember"].values())
    assert spec["minTaskMember"] == {name: r * n for name, (r, n, _, _) in shape.items()}

    cpu = sum(Decimal(milli) / 1000 * r * n for r, n, milli, _ in shape.values())
    gpu = sum(g * r * n for r, n, _, g in shape.values())
    got = spec.get("minResources", {})
    assert Quantity.parse(got.get("cpu", "0")).value == cpu
    assert int(got.get("nvidia.com/gpu", "0")) == gpu
    # Every pod template names a task the PodGroup counts.
    for role_name, parts in serving_pod_templates(result).items():
        for template in parts:
            assert annotations(template)[TASK] == role_name
            assert role_name in spec["minTaskMember"]


# --- against the pinned upstream CRD schemas ----------------------------------------------------
CRDS = {
    "PodGroup": "volcano-v1.13.1/scheduling.volcano.sh_podgroups.yaml",
    "LeaderWorkerSet": "lws-v0.7.0/leaderworkerset.x-k8s.io_leaderworkersets.yaml",
}


@functools.cache
def crd_schema(kind: str, api_version: str) -> dict[str, Any]:
    crd = yaml.load((UPSTREAM / CRDS[kind]).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    [version] = [v for v in crd["spec"]["versions"] if api_version.endswith("/" + v["name"])]
    assert version["served"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize(
    "isvc",
    [
        example("story2-pd-volcano.yaml"),
        example("multinode.yaml"),
        parse(
            InferenceServiceWrapper()
            .namespace("ns")
            .worker(
                "w",
                replicas=2,
                multinode={"nodeCount": 3},
                container=engine_container(resources={"requests": {"cpu": "250m"}}),
            )
            .spec(schedulingStrategy={"queue": "q", "priorityClassName": "high", "gangScheduling": "Enabled"})
            .obj()
        ),
    ],
    ids=["story2", "multinode", "queue-priority"],
)
def test_podgroup_and_lws_fit_the_upstream_schemas(isvc: InferenceService) -> None:
    checked = 0
    for obj in render(isvc).objects:
        if obj["kind"] not in CRDS:
            continue
        body = {k: v for k, v in obj.items() if k != "metadata"}
        assert validate(body, crd_schema(obj["kind"], obj["apiVersion"])) == []
        checked += 1
    assert checked >= 2
