"""Fixtures for tests against the real local control plane.

One control plane per test session (`cluster`): etcd (on tmpfs), kube-apiserver,
kube-controller-manager and kube-scheduler (the versions `fusioninfer_dev.localcluster.build` pins),
KWOK with 4 simulated nodes x 8 `nvidia.com/gpu`, with our InferenceService CRD and the
third-party CRDs installed. Each test that wants isolation takes a fresh `namespace`.

Binaries missing? The `cluster` fixture builds them (once per machine, see the README for how
long) rather than skipping: a skipped integration suite is a suite that silently stopped testing.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import ApiError, AsyncClient, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from fusioninfer.api.crd import crd as generate_crd
from fusioninfer.install.crds import apply_crds
from fusioninfer_dev.localcluster.build import ensure_cluster_binaries
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR, install_crds
from fusioninfer_dev.localcluster.fakes import FakeControllers
from fusioninfer_dev.localcluster.kwok import NodeSpec, create_nodes, delete_nodes, node_names

REPO_ROOT = Path(__file__).resolve().parents[2]  # `tests.support` on sys.path: ../conftest.py

SIM_NODES = 4
SIM_GPUS_PER_NODE = 8
TEST_FIELD_MANAGER = "fusioninfer-tests"
TEST_NAMESPACE_LABEL = "fusioninfer.io/test-namespace"
PRIVATE_NODE_LABEL = "fusioninfer.io/private-node"


def tmpfs_dir() -> Path | None:
    """/dev/shm when usable: etcd fsyncs every write, which is free on tmpfs and slow on disk."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def install_our_crd(client: Client) -> list[str]:
    """Install the InferenceService CRD as `fusioninfer install` does: generated from the code (the
    source of truth), adapted to the server, applied and waited for. Returns its name."""
    return apply_crds(client, [generate_crd()])


@dataclass
class LocalEnv:
    """The session's control plane, its simulated nodes and the CRDs installed."""

    cluster: LocalCluster
    node_names: list[str]
    crds: list[str]


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    """Start the session's control plane + KWOK nodes + CRDs; stop everything at the end."""
    ensure_cluster_binaries()
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), etcd_parent_dir=tmpfs_dir())
    try:
        cluster.up(nodes=SIM_NODES, gpus_per_node=SIM_GPUS_PER_NODE, fake_controllers=False)
        with cluster.client(field_manager=TEST_FIELD_MANAGER) as client:
            crds = install_crds(client, BUNDLED_CRD_DIR) + install_our_crd(client)
        yield LocalEnv(cluster=cluster, node_names=node_names("sim-node", SIM_NODES), crds=crds)
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def cluster(local_env: LocalEnv) -> LocalCluster:
    """The session's running `LocalCluster` (ready, CRDs installed, simulated nodes registered)."""
    return local_env.cluster


@pytest.fixture(scope="session")
def kubeconfig_path(cluster: LocalCluster) -> Path:
    """Admin kubeconfig of the session's cluster."""
    return cluster.kubeconfig_path


@pytest.fixture
def kubeconfig_env(kubeconfig_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`KUBECONFIG` set to the session cluster for the duration of the test (for code that reads it)."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig_path))
    return kubeconfig_path


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    """A sync lightkube Client (admin, field manager `fusioninfer-tests`)."""
    with cluster.client(field_manager=TEST_FIELD_MANAGER) as c:
        yield c


@pytest.fixture
async def async_client(cluster: LocalCluster) -> AsyncIterator[AsyncClient]:
    """An async lightkube AsyncClient (admin, field manager `fusioninfer-tests`)."""
    c = cluster.async_client(field_manager=TEST_FIELD_MANAGER)
    try:
        yield c
    finally:
        await c.close()


def namespace_name(test_name: str) -> str:
    """`t-<test name>-<random>`, a valid DNS-1123 label of at most 63 characters."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:48].rstrip("-") or "test"
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace for this test, deleted afterwards (deletion is not awaited: the namespace
    controller finishes it in the background while the next test runs)."""
    name = namespace_name(request.node.name)
    with cluster.client(field_manager=TEST_FIELD_MANAGER) as c:
        c.create(Namespace(metadata=ObjectMeta(name=name, labels={TEST_NAMESPACE_LABEL: "true"})))
        try:
            yield name
        finally:
            try:
                c.delete(Namespace, name)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise


@pytest.fixture
def fake_controllers(cluster: LocalCluster, namespace: str) -> Iterator[FakeControllers]:
    """The stand-in Volcano and gateway controllers, in-process, acting only in this test's
    namespace (so other tests, which play those controllers themselves, are not disturbed)."""
    with FakeControllers(cluster.kubeconfig_path, namespace=namespace) as fakes:
        yield fakes


@dataclass
class PrivateNodes:
    """Simulated nodes only this test may use: labelled and tainted with the test's namespace."""

    names: list[str]
    selector: dict[str, str]
    toleration: dict[str, str]
    gpus_per_node: int


@pytest.fixture
def private_nodes(cluster: LocalCluster, namespace: str) -> Iterator[PrivateNodes]:
    """Two extra KWOK nodes x 8 GPUs that no other test's Pods can land on (NoSchedule taint
    keyed by the namespace; Pods need `toleration` and `selector`), so capacity arithmetic in a
    test is exact whatever else runs on the session's nodes. Deleted afterwards."""
    key = PRIVATE_NODE_LABEL
    taint = {"key": key, "value": namespace, "effect": "NoSchedule"}
    names = node_names(f"pn-{namespace[-6:]}", 2)
    spec = NodeSpec(gpus=8, labels={key: namespace}, taints=[taint])
    with cluster.client(field_manager=TEST_FIELD_MANAGER) as c:
        create_nodes(c, names, spec, pool=f"pn-{namespace[-6:]}", pod_block=cluster.pod_block)
        try:
            yield PrivateNodes(
                names=names,
                selector={key: namespace},
                toleration={"key": key, "operator": "Equal", "value": namespace, "effect": "NoSchedule"},
                gpus_per_node=8,
            )
        finally:
            delete_nodes(c, names)
