"""RBAC proven: the operator, holding only the shipped ClusterRole, reconciles every example.

The operator runs in-process with the credentials of its own ServiceAccount (a TokenRequest
token, authenticated by the apiserver as `system:serviceaccount:<ns>:<name>`), bound by the
shipped ClusterRoleBinding to the shipped ClusterRole: `config/rbac/` rendered and applied by
kubectl as `make deploy` does (`kubectl apply --server-side`), only moved to the test's namespace
and given unique names (kustomize's `namespace` and `nameSuffix`). It
elects a leader on a Lease, watches, applies every child (including the endpoint picker's Role,
which Kubernetes' escalation check allows only to a subject that holds every permission in it),
writes status and records Events.

And the proof can fail: the same set-up with one permission of the picker's Role removed from
the ClusterRole leaves that Role uncreated and the service Degraded with the apiserver's 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Namespace, Secret
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from tests.support.eventually import eventually_async
from tests.support.kubectl import kubectl, kustomize

from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, build
from fusioninfer.controller.operator import Operator, OperatorConfig, ProcessConfig, run_process
from fusioninfer.install import rbac
from fusioninfer.kube.owners import lists_owner
from fusioninfer.kube.types import Obj as Manifest
from fusioninfer.runtime.apply import apply, get
from fusioninfer.runtime.registry import default_registry, raw_resource
from fusioninfer_dev.localcluster.cluster import LocalCluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RBAC_DIR = ROOT / "config" / "rbac"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ISVC = default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)
RawEvent = raw_resource(Event)
TEST_MANAGER = "fusioninfer-tests"
RECONCILE_TIMEOUT = 90.0


def shipped_rbac(namespace: str, suffix: str, rules: list[dict[str, Any]] | None = None) -> list[Manifest]:
    """config/rbac as `kubectl kustomize` renders it, in `namespace`, names suffixed."""
    with tempfile.TemporaryDirectory() as tmp:
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "nameSuffix": suffix,
            "resources": [os.path.relpath(RBAC_DIR, tmp)],
        }
        # As JSON (YAML too), every string quoted: PyYAML leaves a suffix such as "-5e1234" bare,
        # and kustomize's YAML reads that as a number ("cannot unmarshal number into ... string").
        (Path(tmp) / "kustomization.yaml").write_text(json.dumps(kustomization))
        objects = kustomize(Path(tmp))
    assert sorted(o["kind"] for o in objects) == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    if rules is not None:
        (role,) = [o for o in objects if o["kind"] == "ClusterRole"]
        role["rules"] = rules
    return objects


@dataclass
class OperatorIdentity:
    namespace: str
    service_account: str
    kubeconfig: Path


@contextlib.contextmanager
def operator_identity(
    cluster: LocalCluster, admin: Client, namespace: str, rules: list[dict[str, Any]] | None = None
) -> Iterator[OperatorIdentity]:
    """The shipped ServiceAccount + ClusterRole + binding, and a kubeconfig acting as that SA."""
    suffix = "-" + secrets.token_hex(3)
    objects = shipped_rbac(namespace, suffix, rules)
    kubectl("apply", "--server-side", "-f", "-", kubeconfig=cluster.kubeconfig_path, stdin=yaml.safe_dump_all(objects))
    try:
        (sa,) = [o for o in objects if o["kind"] == "ServiceAccount"]
        name = sa["metadata"]["name"]
        yield OperatorIdentity(namespace, name, cluster.service_account_kubeconfig(namespace, name))
    finally:
        for obj in objects:
            with contextlib.suppress(ApiError):
                if obj["kind"] == "ClusterRole":
                    admin.delete(ClusterRole, obj["metadata"]["name"])
                elif obj["kind"] == "ClusterRoleBinding":
                    admin.delete(ClusterRoleBinding, obj["metadata"]["name"])


@contextlib.asynccontextmanager
async def running_operator(identity: OperatorIdentity, namespaces: list[str] | None) -> AsyncIterator[Operator]:
    """`fusioninfer run` in-process as the SA: leader election on a Lease in its namespace;
    `namespaces=None` watches every namespace, as the shipped Deployment does."""
    client = AsyncClient(config=KubeConfig.from_file(identity.kubeconfig), field_manager="fusioninfer")
    operator = Operator(client, OperatorConfig(namespaces=namespaces, workers=4, resync_period=None))
    process = ProcessConfig(
        metrics_bind=None,
        health_bind=None,
        leader_election=True,
        lease_name="fusioninfer-rbac-test",
        lease_namespace=identity.namespace,
        lease_duration=15.0,
        renew_deadline=10.0,
        retry_period=0.5,
    )
    task = asyncio.create_task(run_process(client, operator, process), name="operator-as-sa")
    try:

        async def ready() -> bool:
            if task.done():
                task.result()  # surface the operator's own failure (e.g. a 403 on its informers)
            return operator.ready()

        await eventually_async(ready, timeout=30.0)
        yield operator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.close()


@pytest.fixture
def admin(cluster: LocalCluster) -> Iterator[Client]:
    with cluster.client(field_manager=TEST_MANAGER) as c:
        yield c


@pytest.fixture
def extra_namespaces(admin: Client) -> Iterator[list[str]]:
    """One namespace per example (two examples share a name, as a user's would across teams)."""
    names = [f"t-rbac-{i}-{secrets.token_hex(3)}" for i in range(len(EXAMPLES))]
    for name in names:
        admin.create(Namespace(metadata=ObjectMeta(name=name, labels={"fusioninfer.io/test-namespace": "true"})))
    yield names
    for name in names:
        with contextlib.suppress(ApiError):
            admin.delete(Namespace, name)


def load_example(path: Path, namespace: str) -> Manifest:
    body: Manifest = yaml.safe_load(path.read_text())
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = namespace
    body.pop("status", None)
    return body


async def service(client: AsyncClient, name: str, namespace: str) -> Manifest:
    found = await get(client, API_VERSION, KIND, name, namespace)
    assert found is not None
    return found


async def test_operator_reconciles_every_example_with_only_its_shipped_rbac(
    cluster: LocalCluster, admin: Client, async_client: AsyncClient, namespace: str, extra_namespaces: list[str]
) -> None:
    assert EXAMPLES, "no examples found"
    with operator_identity(cluster, admin, namespace) as identity:
        # Not admin: the SA cannot read what the ClusterRole does not grant.
        with Client(config=KubeConfig.from_file(identity.kubeconfig)) as as_sa:
            with pytest.raises(ApiError) as denied:
                list(as_sa.list(Secret, namespace=namespace))
            assert denied.value.status.code == 403

        # Every namespace, as deployed: cluster-wide list/watch is part of what the role must allow.
        async with running_operator(identity, None) as operator:
            services = []
            for path, ns in zip(EXAMPLES, extra_namespaces, strict=True):
                created = await apply(async_client, load_example(path, ns), TEST_MANAGER)
                services.append((path.name, created))

            for label, created in services:
                meta = created["metadata"]
                name, ns, uid = meta["name"], meta["namespace"], meta["uid"]
                # Every child the builders want, with the capabilities the operator itself sees.
                options = BuildOptions(capabilities=operator.capabilities(), owner_uid=uid)
                expected = build(parse(created), options).objects
                assert expected, label

                async def children_exist(expected: list[Manifest] = expected, uid: str = uid, ns: str = ns) -> None:
                    for child in expected:
                        live = await get(
                            async_client, child["apiVersion"], child["kind"], child["metadata"]["name"], ns
                        )
                        assert live is not None, f"{child['kind']} {child['metadata']['name']} missing"
                        assert lists_owner(live, uid)

                await eventually_async(children_exist, timeout=RECONCILE_TIMEOUT, message=label)

                async def status_written(name: str = name, ns: str = ns, label: str = label) -> None:
                    live = await service(async_client, name, ns)
                    status = live.get("status") or {}
                    assert status.get("observedGeneration") == live["metadata"]["generation"], label
                    conditions = status.get("conditions") or []
                    assert conditions, label
                    for cond in conditions:
                        assert cond["reason"] != "ApplyFailed", f"{label}: {cond['message']}"
                        assert "forbidden" not in cond["message"].lower(), f"{label}: {cond['message']}"

                await eventually_async(status_written, timeout=RECONCILE_TIMEOUT, message=label)

                if any(role.get("componentType") == "router" for role in created["spec"]["roles"]):
                    role = await get(async_client, "rbac.authorization.k8s.io/v1", "Role", f"{name}-epp", ns)
                    assert role is not None, f"{label}: the picker's Role was not created"

                # Events are best effort in the operator (a 403 is only logged): check they arrive.
                async def events_recorded(ns: str = ns, name: str = name) -> None:
                    events = [
                        e
                        async for e in async_client.list(RawEvent, namespace=ns)
                        if e["involvedObject"].get("name") == name
                    ]
                    assert any(e.get("reason") == "Created" for e in events), events
                    assert not any(e.get("reason") in ("ApplyFailed", "PruneFailed") for e in events), events

                await eventually_async(events_recorded, timeout=RECONCILE_TIMEOUT, message=label)

            lease = await get(async_client, "coordination.k8s.io/v1", "Lease", "fusioninfer-rbac-test", namespace)
            assert lease is not None
            assert lease["spec"].get("holderIdentity")


def without_picker_permission(resource: str) -> list[dict[str, Any]]:
    """The shipped rules minus `resource` of the picker's InferenceObjective API group."""
    out = []
    for rule in rbac.operator_rules():
        if rule["apiGroups"] == ["inference.networking.x-k8s.io"]:
            rule = {**rule, "resources": [r for r in rule["resources"] if r != resource]}
        out.append(rule)
    assert out != rbac.operator_rules()
    return out


async def test_a_permission_missing_from_the_cluster_role_fails_the_reconcile(
    cluster: LocalCluster, admin: Client, async_client: AsyncClient, namespace: str
) -> None:
    """Without `inferenceobjectives` the picker's Role is refused (escalation check), so the
    service is Degraded with the apiserver's 403, while its other children are created."""
    target = namespace
    rules = without_picker_permission("inferenceobjectives")
    with operator_identity(cluster, admin, namespace, rules) as identity:
        async with running_operator(identity, [target]):
            example = load_example(ROOT / "examples" / "monolithic.yaml", target)
            created = await apply(async_client, example, TEST_MANAGER)
            name = created["metadata"]["name"]

            async def refused() -> None:
                live = await service(async_client, name, target)
                conditions = {c["type"]: c for c in (live.get("status") or {}).get("conditions") or []}
                degraded = conditions.get("Degraded") or {}
                assert degraded.get("status") == "True"
                assert degraded.get("reason") == "ApplyFailed"
                assert f"Role {name}-epp" in degraded["message"]
                assert "403" in degraded["message"]

            await eventually_async(refused, timeout=RECONCILE_TIMEOUT)
            assert await get(async_client, "rbac.authorization.k8s.io/v1", "Role", f"{name}-epp", target) is None
            # Children the reduced role still allows were created.
            assert await get(async_client, "v1", "ServiceAccount", f"{name}-epp", target) is not None
