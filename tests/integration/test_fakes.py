"""The fake Volcano and gateway controllers on the real control plane.

Each test runs the fakes in-process for its own namespace only (`fake_controllers`); the gang
tests schedule onto two private simulated nodes (`private_nodes`) so that the capacity
arithmetic is exact whatever the rest of the session left on the shared nodes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightkube import Client
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType
from tests.integration.conftest import PrivateNodes
from tests.support.eventually import eventually

from fusioninfer.runtime.registry import raw_resource
from fusioninfer_dev.localcluster.fakes import FakeControllers
from fusioninfer_dev.localcluster.gateway.status import CONTROLLER_NAME

pytestmark = pytest.mark.integration

PodGroup = create_namespaced_resource("scheduling.volcano.sh", "v1beta1", "PodGroup", "podgroups")
GatewayClass = create_global_resource("gateway.networking.k8s.io", "v1", "GatewayClass", "gatewayclasses")
Gateway = create_namespaced_resource("gateway.networking.k8s.io", "v1", "Gateway", "gateways")
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
InferencePool = create_namespaced_resource("inference.networking.k8s.io", "v1", "InferencePool", "inferencepools")
RawPod = raw_resource(Pod)
RawService = raw_resource(Service)


def gang_pod(namespace: str, name: str, group: str, gpus: int, nodes: PrivateNodes) -> Any:
    return RawPod(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {"scheduling.k8s.io/group-name": group, "volcano.sh/task-spec": "worker"},
            },
            "spec": {
                "schedulerName": "volcano",
                "nodeSelector": nodes.selector,
                "tolerations": [nodes.toleration],
                "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
            },
        }
    )


def podgroup(namespace: str, name: str, min_member: int) -> Any:
    return PodGroup(
        {
            "apiVersion": "scheduling.volcano.sh/v1beta1",
            "kind": "PodGroup",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"minMember": min_member, "minTaskMember": {"worker": min_member}},
        }
    )


def pods(client: Client, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: dict(p) for p in client.list(RawPod, namespace=namespace)}


def pg_status(client: Client, namespace: str, name: str) -> dict[str, Any]:
    return dict(client.get(PodGroup, name, namespace=namespace).get("status") or {})


def unschedulable(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Unschedulable"), {})


def test_gang_binds_nothing_until_min_member_pods_exist_then_all(
    client: Client, namespace: str, private_nodes: PrivateNodes, fake_controllers: FakeControllers
) -> None:
    client.create(podgroup(namespace, "g", 3))
    for i in range(2):
        client.create(gang_pod(namespace, f"p{i}", "g", 4, private_nodes))

    def waiting_for_members() -> bool:
        st = pg_status(client, namespace, "g")
        assert st.get("phase") == "Pending", st
        assert unschedulable(st).get("reason") == "NotEnoughTasks", st
        return "valid: 2, min: 3" in unschedulable(st)["message"]

    eventually(waiting_for_members, timeout=20)
    time.sleep(1.5)  # more than a scheduling period: still nothing bound
    assert not any(p["spec"].get("nodeName") for p in pods(client, namespace).values())

    client.create(gang_pod(namespace, "p2", "g", 4, private_nodes))

    def all_running() -> bool:
        live = pods(client, namespace)
        assert {p["spec"].get("nodeName") for p in live.values()} <= set(private_nodes.names)
        assert all(p.get("status", {}).get("phase") == "Running" for p in live.values()), live
        st = pg_status(client, namespace, "g")
        assert st.get("phase") == "Running", st
        assert st.get("running") == 3, st
        return any(c.get("type") == "Scheduled" for c in st.get("conditions") or [])

    eventually(all_running, timeout=30)


def test_gang_that_does_not_fit_stays_unbound_with_the_reason(
    client: Client, namespace: str, private_nodes: PrivateNodes, fake_controllers: FakeControllers
) -> None:
    # 3 pods x 8 GPUs on 2 private nodes x 8 GPUs: two would fit, the gang never does.
    client.create(podgroup(namespace, "big", 3))
    for i in range(3):
        client.create(gang_pod(namespace, f"b{i}", "big", 8, private_nodes))

    def reported() -> bool:
        st = pg_status(client, namespace, "big")
        cond = unschedulable(st)
        assert cond.get("reason") == "NotEnoughResources", st
        assert "Insufficient nvidia.com/gpu" in cond["message"], cond
        # Enqueueing looks at the whole cluster's idle capacity (the shared nodes too), so either.
        assert st.get("phase") in ("Pending", "Inqueue"), st
        scheduled = [c for p in pods(client, namespace).values() for c in p.get("status", {}).get("conditions") or []]
        return sum(1 for c in scheduled if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable") == 3

    eventually(reported, timeout=20)
    time.sleep(1.5)
    assert not any(p["spec"].get("nodeName") for p in pods(client, namespace).values()), "partial gang bound"

    # Shrinking the gang to what fits lets it through.
    client.patch(
        PodGroup,
        "big",
        {"spec": {"minMember": 2, "minTaskMember": {"worker": 2}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    eventually(lambda: pg_status(client, namespace, "big").get("phase") == "Running", timeout=20)
    bound = [p for p in pods(client, namespace).values() if p["spec"].get("nodeName")]
    assert len(bound) == 2
    assert len({p["spec"]["nodeName"] for p in bound}) == 2


def test_gateway_accepts_routes_of_its_gateways_only(
    client: Client, namespace: str, fake_controllers: FakeControllers
) -> None:
    gwc = f"fake-{namespace}"
    client.create(
        GatewayClass(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": gwc},
                "spec": {"controllerName": CONTROLLER_NAME},
            }
        )
    )
    try:
        client.create(
            Gateway(
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "metadata": {"name": "gw", "namespace": namespace},
                    "spec": {"gatewayClassName": gwc, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
                }
            )
        )
        client.create(
            RawService(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "epp", "namespace": namespace},
                    "spec": {"ports": [{"port": 9002, "protocol": "TCP"}], "selector": {"app": "epp"}},
                }
            )
        )
        client.create(
            InferencePool(
                {
                    "apiVersion": "inference.networking.k8s.io/v1",
                    "kind": "InferencePool",
                    "metadata": {"name": "pool", "namespace": namespace},
                    "spec": {
                        "selector": {"matchLabels": {"app": "vllm"}},
                        "targetPorts": [{"number": 8000}],
                        "endpointPickerRef": {"name": "epp", "port": {"number": 9002}},
                    },
                }
            )
        )
        client.create(
            HTTPRoute(
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "HTTPRoute",
                    "metadata": {"name": "route", "namespace": namespace},
                    "spec": {
                        "parentRefs": [{"name": "gw"}, {"name": "no-such-gateway"}],
                        "rules": [
                            {
                                "backendRefs": [
                                    {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "pool"}
                                ]
                            }
                        ],
                    },
                }
            )
        )

        def statuses() -> bool:
            route = client.get(HTTPRoute, "route", namespace=namespace)
            parents = (route.get("status") or {}).get("parents") or []
            assert [p["parentRef"]["name"] for p in parents] == ["gw"], parents
            conds = {c["type"]: c["status"] for c in parents[0]["conditions"]}
            assert conds == {"Accepted": "True", "ResolvedRefs": "True"}
            assert parents[0]["controllerName"] == CONTROLLER_NAME
            gw = client.get(Gateway, "gw", namespace=namespace)["status"]
            assert {c["type"]: c["status"] for c in gw["conditions"]} == {"Accepted": "True", "Programmed": "True"}
            assert gw["listeners"][0]["attachedRoutes"] == 1
            pool = client.get(InferencePool, "pool", namespace=namespace).get("status") or {}
            pool_parents = pool.get("parents") or []
            assert [p["parentRef"]["name"] for p in pool_parents] == ["gw"], pool
            return {c["type"]: c["status"] for c in pool_parents[0]["conditions"]} == {
                "Accepted": "True",
                "ResolvedRefs": "True",
            }

        eventually(statuses, timeout=20)

        # A backend that does not exist: ResolvedRefs=False, as a real implementation reports it.
        client.patch(
            HTTPRoute,
            "route",
            {
                "spec": {
                    "rules": [
                        {
                            "backendRefs": [
                                {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "nope"}
                            ]
                        }
                    ]
                }
            },
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

        def unresolved() -> bool:
            parents = client.get(HTTPRoute, "route", namespace=namespace)["status"]["parents"]
            resolved = next(c for c in parents[0]["conditions"] if c["type"] == "ResolvedRefs")
            return resolved["status"] == "False" and resolved["reason"] == "BackendNotFound"

        eventually(unresolved, timeout=20)
    finally:
        client.delete(GatewayClass, gwc)
