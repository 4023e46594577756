"""Fixtures for tests against the real local control plane.

One control plane per test session (`cluster`): etcd (on tmpfs), kube-apiserver,
kube-controller-manager and kube-scheduler v1.20.2, plus an in-process node simulator with
4 nodes x 8 `nvidia.com/gpu` (`node_simulator`), with our InferenceService CRD and the minimal
third-party CRDs installed. Each test that wants isolation takes a fresh `namespace`.

Binaries missing? The `cluster` fixture builds them (about 10 minutes, once per machine) rather
than skipping: a skipped integration suite is a suite that silently stopped testing.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import ApiError, AsyncClient, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Node
from lightkube.types import PatchType

from fusioninfer.localcluster.build import ensure_binaries
from fusioninfer.localcluster.cluster import LocalCluster
from fusioninfer.localcluster.crds import BUNDLED_CRD_DIR, install_crds
from fusioninfer.localcluster.fakes import FakeControllers
from fusioninfer.localcluster.nodesim import NodeSimulator, NodeSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
# `tests.support` must be importable however pytest was started (`pytest`, not `python -m pytest`).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

OUR_CRD_FILE = REPO_ROOT / "config" / "crd" / "bases" / "fusioninfer.io_inferenceservices.yaml"
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
    """Install the InferenceService CRD: generated from the code when `fusioninfer.install` offers
    that (the code is the source of truth; it also adapts the CRD to this 1.20 server), otherwise
    from `config/crd/bases/` if the file exists. Returns the names installed (maybe none yet)."""
    try:
        from fusioninfer.api.crd import crd as generate_crd
        from fusioninfer.install import apply_crds
    except ImportError:
        if OUR_CRD_FILE.exists():
            return install_crds(client, OUR_CRD_FILE, field_manager=TEST_FIELD_MANAGER)
        return []
    return list(apply_crds(client, [generate_crd()]))


@dataclass
class LocalEnv:
    """The session's control plane and its node simulator."""

    cluster: LocalCluster
    simulator: NodeSimulator
    crds: list[str]


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    """Start the session's control plane + simulator + CRDs; stop everything at the end."""
    ensure_binaries()
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), etcd_parent_dir=tmpfs_dir())
    cluster.up()
    simulator: NodeSimulator | None = None
    try:
        with cluster.client(field_manager=TEST_FIELD_MANAGER) as client:
            crds = install_crds(client, BUNDLED_CRD_DIR) + install_our_crd(client)
        simulator = NodeSimulator(
            cluster.kubeconfig_path, nodes=SIM_NODES, gpus_per_node=SIM_GPUS_PER_NODE, heartbeat_interval=5.0
        ).start()
        yield LocalEnv(cluster=cluster, simulator=simulator, crds=crds)
    finally:
        if simulator is not None:
            simulator.stop()
        cluster.down()


@pytest.fixture(scope="session")
def cluster(local_env: LocalEnv) -> LocalCluster:
    """The session's running `LocalCluster` (ready, CRDs installed, simulated nodes registered)."""
    return local_env.cluster


@pytest.fixture(scope="session")
def node_simulator(local_env: LocalEnv) -> NodeSimulator:
    """The session's in-process simulator (nodes `sim-node-0..3`). Tests that change its rules
    must restore them (see `simulation_rules`)."""
    return local_env.simulator


@pytest.fixture
def simulation_rules(node_simulator: NodeSimulator) -> Iterator[NodeSimulator]:
    """The simulator, with its label rules restored after the test."""
    saved = node_simulator.rules
    yield node_simulator
    node_simulator.set_rules(saved)


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
    """The fake Volcano / LWS / gateway controllers, in-process, acting only in this test's
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
    """Two extra simulated nodes x 8 GPUs that no other test's Pods can land on (NoSchedule taint
    keyed by the namespace; Pods need `toleration` and `selector`), so capacity arithmetic in a
    test is exact whatever else runs on the session's nodes. Deleted afterwards."""
    key = PRIVATE_NODE_LABEL
    sim = NodeSimulator(
        cluster.kubeconfig_path,
        nodes=2,
        name_prefix=f"pn-{namespace[-6:]}",
        node_spec=NodeSpec(gpus=8, labels={key: namespace}),
        heartbeat_interval=5.0,
        delete_nodes_on_stop=True,
    )
    sim.start()
    try:
        taint = {"key": key, "value": namespace, "effect": "NoSchedule"}
        with cluster.client(field_manager=TEST_FIELD_MANAGER) as c:
            for name in sim.node_names:
                c.patch(Node, name, {"spec": {"taints": [taint]}}, patch_type=PatchType.MERGE)
        yield PrivateNodes(
            names=list(sim.node_names),
            selector={key: namespace},
            toleration={"key": key, "operator": "Equal", "value": namespace, "effect": "NoSchedule"},
            gpus_per_node=8,
        )
    finally:
        sim.stop()
