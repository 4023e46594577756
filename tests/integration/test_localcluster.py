"""Tests of the local control plane harness itself: lifecycle, process safety, the node
simulator against the real scheduler and controller-manager, garbage collection, failure
simulation, apiserver restarts and extra users."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Node, Pod, PodStatus, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import PatchType
from tests.support.eventually import eventually, eventually_async
from typer.testing import CliRunner

from fusioninfer.localcluster.cli import cluster_app
from fusioninfer.localcluster.cluster import (
    APISERVER,
    CONTROLLER_MANAGER,
    ETCD,
    NODESIM,
    SCHEDULER,
    ClusterAlreadyRunning,
    LocalCluster,
    ProcessRecord,
    is_our_process,
)
from fusioninfer.localcluster.nodesim import (
    SIMULATE_ANNOTATION,
    SIMULATE_DELAY_ANNOTATION,
    NodeSimulator,
    PodMode,
    SimulationRule,
)

pytestmark = pytest.mark.integration

FM = "fusioninfer-tests"
SIM_NODES = 4  # the session simulator's size (tests/integration/conftest.py)
SIM_GPUS_PER_NODE = 8


def tmpfs_dir() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    gpus: int = 0,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    pod_labels = {"app": name, **(labels or {})}
    container: dict[str, Any] = {"name": "engine", "image": "vllm/vllm-openai:v0.11.0"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations or {}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 30},
            },
        },
    }


def pod(
    name: str,
    namespace: str,
    *,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    restart_policy: str = "Always",
    gpus: int = 0,
    readiness_gates: list[str] | None = None,
    init_container: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    if readiness_gates:
        spec["readinessGates"] = [{"conditionType": c} for c in readiness_gates]
    if init_container:
        spec["initContainers"] = [{"name": "init", "image": "busybox:1.36"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "annotations": annotations or {}},
        "spec": spec,
    }


def apply(client: Client, res: Any, obj: dict[str, Any]) -> Any:
    meta = obj["metadata"]
    return client.patch(
        res, meta["name"], obj, namespace=meta.get("namespace"), patch_type=PatchType.APPLY, field_manager=FM
    )


def conditions(p: Any) -> dict[str, str]:
    return {c.type: c.status for c in (p.status.conditions or [])}


def get_pod(client: Client, name: str, namespace: str) -> Any:
    return client.get(Pod, name, namespace=namespace)


def get_any(client: Client, res: Any, name: str, namespace: str | None = None) -> Any:
    """`client.get` typed as Any: lightkube's models make every field Optional, which would turn
    each assertion into a None check."""
    return client.get(res, name, namespace=namespace)


def all_nodes(client: Client) -> list[Any]:
    return list(client.list(Node))


def pods_of(client: Client, namespace: str, app: str) -> list[Any]:
    return list(client.list(Pod, namespace=namespace, labels={"app": app}))


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket `pid` listens on, from /proc (no ss/psutil needed)."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found: set[tuple[str, int]] = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            ip_hex, port_hex = local.split(":")
            raw = bytes.fromhex(ip_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def foreign_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process the harness did not start; it must survive every `down`."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------------------------
# process safety and lifecycle (own clusters)
# --------------------------------------------------------------------------------------------


def test_down_never_signals_a_process_it_does_not_recognise(
    tmp_path: Path, foreign_process: subprocess.Popen[bytes]
) -> None:
    """A recorded PID that now belongs to another program (PID reuse, or a stale state file)
    must not be signalled: neither argv nor start time may differ from what we recorded."""
    real_argv = ["sleep", "300"]
    from fusioninfer.localcluster.cluster import _proc_start_time

    start = _proc_start_time(foreign_process.pid)
    assert start is not None
    records = {
        # Same PID, somebody else's argv (what a recycled PID looks like).
        ETCD: ProcessRecord(ETCD, foreign_process.pid, ["/usr/bin/etcd", "--data-dir=x"], start, "x.log"),
        # Same PID and argv but another start time: an older process that had this PID.
        APISERVER: ProcessRecord(APISERVER, foreign_process.pid, real_argv, start - 1, "y.log"),
    }
    state = {
        "version": 1,
        "server": "https://127.0.0.1:1",
        "admin_token": "t",
        "ports": {},
        "processes": {k: vars(v) for k, v in records.items()},
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "unrelated.txt").write_text("not ours")

    stopped = LocalCluster(tmp_path).down()

    assert stopped == []
    assert foreign_process.poll() is None, "down() signalled a process it did not start"
    assert not is_our_process(records[ETCD])
    assert not is_our_process(records[APISERVER])
    # The state is gone but a file we did not create is left alone (and so is the directory).
    assert not (tmp_path / "state.json").exists()
    assert (tmp_path / "unrelated.txt").read_text() == "not ours"


def test_cli_up_status_down_with_background_simulator(tmp_path: Path, foreign_process: subprocess.Popen[bytes]) -> None:
    """`fusioninfer cluster up --nodes 1` -> a ready cluster with a simulated node; `status`
    reports it; `down` stops exactly the recorded processes and removes the state."""
    state_dir = tmp_path / "state"
    runner = CliRunner()
    started = time.monotonic()
    result = runner.invoke(cluster_app, ["up", "--nodes", "1", "--gpus-per-node", "2", "--state-dir", str(state_dir)])
    up_seconds = time.monotonic() - started
    try:
        assert result.exit_code == 0, result.output
        kubeconfig = state_dir / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in result.output
        assert up_seconds < 30, f"cluster up took {up_seconds:.1f}s"

        status = runner.invoke(cluster_app, ["status", "--state-dir", str(state_dir)])
        assert status.exit_code == 0, status.output
        for name in (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, NODESIM):
            assert name in status.output
        assert "NOT" not in status.output

        again = runner.invoke(cluster_app, ["up", "--state-dir", str(state_dir)])
        assert again.exit_code == 0
        assert "already running" in again.output

        with Client(config=KubeConfig.from_file(kubeconfig)) as c:
            # The simulator registers its nodes in the background: a 404 at first is expected.
            node: Any = eventually(lambda: c.get(Node, "sim-node-0"), timeout=30, retry_on=(ApiError,))
            assert node.status.allocatable["nvidia.com/gpu"] == "2"

        records = LocalCluster(state_dir).processes()
        ports = LocalCluster(state_dir).ports
    except BaseException:
        LocalCluster(state_dir).down()
        raise

    down = runner.invoke(cluster_app, ["down", "--state-dir", str(state_dir)])
    assert down.exit_code == 0, down.output
    for rec in records.values():
        assert not is_our_process(rec), f"{rec.name} (pid {rec.pid}) still running after down"
    assert not state_dir.exists()
    assert not port_open(ports["apiserver"])
    assert foreign_process.poll() is None
    after = runner.invoke(cluster_app, ["status", "--state-dir", str(state_dir)])
    assert after.exit_code == 1
    assert "No cluster" in after.output


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, NodeSimulator]]:
    """A cluster of our own for tests that restart the apiserver, so the session's cluster is
    never disturbed; with a one-node in-process simulator."""
    cluster = LocalCluster(tmp_path_factory.mktemp("private-cluster"), etcd_parent_dir=tmpfs_dir())
    cluster.up()
    sim: NodeSimulator | None = None
    try:
        sim = NodeSimulator(cluster.kubeconfig_path, nodes=1, gpus_per_node=8, name_prefix="priv").start()
        yield cluster, sim
    finally:
        if sim is not None:
            sim.stop()
        cluster.down()


def test_status_and_loopback_only(private_cluster: tuple[LocalCluster, NodeSimulator]) -> None:
    cluster, _ = private_cluster
    status = LocalCluster(cluster.state_dir).status()  # a fresh object reads the state file
    assert status.running
    assert status.ready
    assert [c.name for c in status.components] == [ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER]
    assert status.kubeconfig == cluster.kubeconfig_path
    with pytest.raises(ClusterAlreadyRunning):
        LocalCluster(cluster.state_dir).up()

    listening: dict[str, set[tuple[str, int]]] = {
        name: listening_addresses(rec.pid) for name, rec in cluster.processes().items()
    }
    assert listening[APISERVER] == {("127.0.0.1", cluster.ports["apiserver"])}
    assert {port for _, port in listening[ETCD]} == {cluster.ports["etcd_client"], cluster.ports["etcd_peer"]}
    for name, addresses in listening.items():
        for ip, port in addresses:
            assert ip == "127.0.0.1", f"{name} listens on {ip}:{port}"
    assert listening[CONTROLLER_MANAGER] == set()
    assert listening[SCHEDULER] == set()


def test_apiserver_restart_keeps_data_and_everything_recovers(
    private_cluster: tuple[LocalCluster, NodeSimulator],
) -> None:
    """Only the apiserver restarts (new PID, same port); data survives in etcd, and the
    controller-manager, scheduler and simulator reconnect by themselves."""
    cluster, sim = private_cluster
    before = cluster.processes()
    with cluster.client(field_manager=FM) as c:
        apply(
            c,
            ConfigMap,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "survivor", "namespace": "default"},
                "data": {"k": "v"},
            },
        )
        apply(c, Deployment, deployment("restart-web", "default", replicas=1))
        eventually(lambda: get_any(c, Deployment, "restart-web", "default").status.readyReplicas == 1)

    cluster.restart_apiserver()

    after = cluster.processes()
    assert after[APISERVER].pid != before[APISERVER].pid
    for name in (ETCD, CONTROLLER_MANAGER, SCHEDULER):
        assert after[name].pid == before[name].pid
        assert is_our_process(after[name])
    with cluster.client(field_manager=FM) as c:
        assert c.get(ConfigMap, "survivor", namespace="default").data == {"k": "v"}
        c.patch(Deployment, "restart-web", {"spec": {"replicas": 3}}, namespace="default")
        eventually(
            lambda: get_any(c, Deployment, "restart-web", "default").status.readyReplicas == 3,
            timeout=60,
            message="controller-manager, scheduler and simulator should recover after the restart",
        )
    assert sim.stats["watch_restarts"] >= 1


def test_static_token_user_is_subject_to_rbac(private_cluster: tuple[LocalCluster, NodeSimulator]) -> None:
    """`add_user` gives a test its own identity; RBAC (not the admin's system:masters) decides."""
    cluster, _ = private_cluster
    alice = cluster.add_user("alice", groups=["fusioninfer:testers"])
    assert alice in cluster.users()
    kubeconfig = cluster.user_kubeconfig(alice)
    with Client(config=KubeConfig.from_file(kubeconfig)) as as_alice, cluster.client(field_manager=FM) as admin:
        with pytest.raises(ApiError) as denied:
            list(as_alice.list(Pod, namespace="default"))
        assert denied.value.status.code == 403
        assert 'User "alice"' in str(denied.value.status.message)

        apply(
            admin,
            Role,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader", "namespace": "default"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            },
        )
        apply(
            admin,
            RoleBinding,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "testers-read-pods", "namespace": "default"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "fusioninfer:testers"}],
            },
        )
        eventually(lambda: list(as_alice.list(Pod, namespace="default")) is not None, retry_on=(ApiError,))
        with pytest.raises(ApiError) as still_denied:
            list(as_alice.list(ConfigMap, namespace="default"))
        assert still_denied.value.status.code == 403


# --------------------------------------------------------------------------------------------
# the session cluster: simulator, scheduler, controllers
# --------------------------------------------------------------------------------------------


def test_simulated_nodes_are_registered_ready_with_gpus(client: Client) -> None:
    nodes = [n for n in all_nodes(client) if n.metadata.name.startswith("sim-node-")]
    assert sorted(n.metadata.name for n in nodes) == [f"sim-node-{i}" for i in range(SIM_NODES)]
    for node in nodes:
        assert node.status.allocatable["nvidia.com/gpu"] == str(SIM_GPUS_PER_NODE)
        assert node.status.capacity["cpu"] == "32"
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert not node.spec.taints
        lease = get_any(client, Lease, node.metadata.name, "kube-node-lease")
        renewed = lease.spec.renewTime
        assert dt.datetime.now(dt.UTC) - renewed < dt.timedelta(seconds=60)


def test_deployment_pods_become_ready_on_simulated_nodes(client: Client, namespace: str) -> None:
    """Real Deployment + ReplicaSet controllers and scheduler, plus the simulator: available."""
    apply(client, Deployment, deployment("web", namespace, replicas=3, gpus=2))

    def available() -> bool:
        status = get_any(client, Deployment, "web", namespace).status
        return status is not None and status.availableReplicas == 3 and status.readyReplicas == 3

    eventually(available, timeout=30)
    pods = pods_of(client, namespace, "web")
    assert len(pods) == 3
    ips = set()
    for p in pods:
        assert p.spec.nodeName.startswith("sim-node-")
        assert p.status.phase == "Running"
        assert conditions(p) == {
            "Initialized": "True",
            "Ready": "True",
            "ContainersReady": "True",
            "PodScheduled": "True",
        }
        assert ipaddress.ip_address(p.status.podIP) in ipaddress.ip_network("10.244.0.0/16")
        assert p.status.hostIP.startswith("10.240.")
        (cs,) = p.status.containerStatuses
        assert cs.name == "engine"
        assert cs.ready
        assert cs.state.running is not None
        ips.add(p.status.podIP)
    assert len(ips) == 3, "pod IPs must be unique"

    # Scaling down deletes pods gracefully; with no kubelet, the simulator must finish the job.
    client.patch(Deployment, "web", {"spec": {"replicas": 0}}, namespace=namespace)
    eventually(lambda: pods_of(client, namespace, "web") == [], timeout=20)


def test_gpu_capacity_is_enforced_by_the_scheduler(client: Client, namespace: str) -> None:
    apply(client, Pod, pod("too-big", namespace, gpus=SIM_GPUS_PER_NODE + 1))

    def unschedulable() -> bool:
        p = get_pod(client, "too-big", namespace)
        scheduled = [c for c in (p.status.conditions or []) if c.type == "PodScheduled"]
        return bool(scheduled) and scheduled[0].status == "False" and scheduled[0].reason == "Unschedulable"

    eventually(unschedulable, timeout=20)
    p = get_pod(client, "too-big", namespace)
    assert p.spec.nodeName is None
    assert p.status.phase == "Pending"


def test_garbage_collector_deletes_owned_child(client: Client, namespace: str) -> None:
    owner = apply(
        client,
        ConfigMap,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": namespace}},
    )
    apply(
        client,
        ConfigMap,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "child",
                "namespace": namespace,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                ],
            },
        },
    )
    client.delete(ConfigMap, "owner", namespace=namespace)

    def child_gone() -> bool:
        try:
            client.get(ConfigMap, "child", namespace=namespace)
        except ApiError as exc:
            return exc.status.code == 404
        return False

    eventually(child_gone, timeout=30)


def test_fail_annotation_crash_loops_a_deployment_pod(client: Client, namespace: str) -> None:
    apply(client, Deployment, deployment("broken", namespace, replicas=2, annotations={SIMULATE_ANNOTATION: "fail"}))

    def crash_looping() -> list[Any]:
        pods = pods_of(client, namespace, "broken")
        looping = [
            p
            for p in pods
            if p.status.containerStatuses
            and p.status.containerStatuses[0].state.waiting is not None
            and p.status.containerStatuses[0].state.waiting.reason == "CrashLoopBackOff"
        ]
        return looping if len(looping) == 2 else []

    pods = eventually(crash_looping, timeout=30)
    for p in pods:
        assert p.status.phase == "Running"
        assert conditions(p)["Ready"] == "False"
        assert p.status.containerStatuses[0].restartCount > 0
        assert p.status.containerStatuses[0].lastState.terminated.exitCode == 1
    status = get_any(client, Deployment, "broken", namespace).status
    assert not status.readyReplicas
    assert not status.availableReplicas


def test_fail_annotation_with_restart_policy_never_fails_the_pod(client: Client, namespace: str) -> None:
    apply(client, Pod, pod("job-like", namespace, restart_policy="Never", annotations={SIMULATE_ANNOTATION: "fail"}))
    p = eventually(lambda: (q := get_pod(client, "job-like", namespace)).status.phase == "Failed" and q, timeout=20)
    assert p.status.containerStatuses[0].state.terminated.exitCode == 1
    assert conditions(p)["Ready"] == "False"


@pytest.mark.parametrize(
    ("mode", "phase", "ready", "state"),
    [
        (PodMode.UNREADY, "Running", "False", "running"),
        (PodMode.PENDING, "Pending", "False", "waiting"),
        (PodMode.SUCCEED, "Succeeded", "False", "terminated"),
        (PodMode.RUN, "Running", "True", "running"),
    ],
)
def test_simulate_annotation_modes(
    client: Client, namespace: str, mode: PodMode, phase: str, ready: str, state: str
) -> None:
    apply(client, Pod, pod("p", namespace, annotations={SIMULATE_ANNOTATION: mode.value}, init_container=True))

    def settled() -> Any:
        p = get_pod(client, "p", namespace)
        return p if p.status.phase == phase and p.status.containerStatuses else None

    p = eventually(settled, timeout=20)
    assert conditions(p)["Ready"] == ready
    assert getattr(p.status.containerStatuses[0].state, state) is not None
    assert conditions(p)["PodScheduled"] == "True"
    if mode is PodMode.PENDING:
        assert p.status.podIP is None
        assert p.status.containerStatuses[0].state.waiting.reason == "ContainerCreating"
    else:
        assert p.status.initContainerStatuses[0].state.terminated.reason == "Completed"


def test_label_rules_fail_matching_pods_and_can_be_changed_at_run_time(
    simulation_rules: NodeSimulator, client: Client, namespace: str
) -> None:
    apply(client, Pod, pod("flaky", namespace, labels={"app": "flaky"}))
    apply(client, Pod, pod("steady", namespace, labels={"app": "steady"}))
    eventually(lambda: conditions(get_pod(client, "flaky", namespace)).get("Ready") == "True")

    simulation_rules.set_rules([SimulationRule({"app": "flaky"}, PodMode.FAIL)])
    eventually(lambda: conditions(get_pod(client, "flaky", namespace))["Ready"] == "False")
    assert get_pod(client, "flaky", namespace).status.containerStatuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert conditions(get_pod(client, "steady", namespace))["Ready"] == "True"

    simulation_rules.set_rules([])
    eventually(lambda: conditions(get_pod(client, "flaky", namespace))["Ready"] == "True")


def test_annotating_a_running_pod_makes_it_fail(client: Client, namespace: str) -> None:
    apply(client, Pod, pod("victim", namespace))
    eventually(lambda: conditions(get_pod(client, "victim", namespace)).get("Ready") == "True")
    client.patch(Pod, "victim", {"metadata": {"annotations": {SIMULATE_ANNOTATION: "fail"}}}, namespace=namespace)
    eventually(lambda: conditions(get_pod(client, "victim", namespace))["Ready"] == "False")


def test_start_delay_annotation(client: Client, namespace: str) -> None:
    apply(client, Pod, pod("slow", namespace, annotations={SIMULATE_DELAY_ANNOTATION: "2"}))
    created = time.monotonic()
    p = eventually(lambda: (q := get_pod(client, "slow", namespace)).status.containerStatuses and q, timeout=10)
    if time.monotonic() - created < 1.5:
        assert p.status.phase == "Pending"
    eventually(lambda: conditions(get_pod(client, "slow", namespace)).get("Ready") == "True", timeout=15)
    assert time.monotonic() - created >= 2.0


def test_readiness_gate_holds_ready_until_its_condition_is_true(client: Client, namespace: str) -> None:
    gate = "fusioninfer.io/endpoint-registered"
    apply(client, Pod, pod("gated", namespace, readiness_gates=[gate]))
    p = eventually(lambda: (q := get_pod(client, "gated", namespace)).status.phase == "Running" and q)
    assert conditions(p)["ContainersReady"] == "True"
    assert conditions(p)["Ready"] == "False"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.patch(
        PodStatus,
        "gated",
        {"status": {"conditions": [{"type": gate, "status": "True", "lastTransitionTime": now}]}},
        namespace=namespace,
    )
    eventually(lambda: conditions(get_pod(client, "gated", namespace))["Ready"] == "True")
    assert conditions(get_pod(client, "gated", namespace))[gate] == "True"


def test_service_account_token_authenticates_as_the_service_account(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    client.create(ServiceAccount(metadata=ObjectMeta(name="operator")), namespace=namespace)
    kubeconfig = cluster.service_account_kubeconfig(namespace, "operator")
    with Client(config=KubeConfig.from_file(kubeconfig)) as as_sa, pytest.raises(ApiError) as denied:
        list(as_sa.list(Pod, namespace=namespace))
    assert denied.value.status.code == 403
    assert f"system:serviceaccount:{namespace}:operator" in str(denied.value.status.message)


async def test_async_client_sees_pods_become_ready(async_client: AsyncClient, namespace: str) -> None:
    await async_client.patch(
        Pod, "async", pod("async", namespace), namespace=namespace, patch_type=PatchType.APPLY, field_manager=FM
    )

    async def ready() -> bool:
        p = await async_client.get(Pod, "async", namespace=namespace)
        return conditions(p).get("Ready") == "True"

    await eventually_async(ready, timeout=20)


def test_second_simulator_with_another_prefix_shares_the_cluster(cluster: LocalCluster, client: Client) -> None:
    """Tests may add nodes of their own (e.g. a GPU type) next to the session's; deleted on stop."""
    with NodeSimulator(
        cluster.kubeconfig_path, nodes=2, gpus_per_node=1, name_prefix="extra", delete_nodes_on_stop=True
    ):
        names = {n.metadata.name for n in all_nodes(client)}
        assert {"extra-0", "extra-1"} <= names
        assert get_any(client, Node, "extra-0").status.allocatable["nvidia.com/gpu"] == "1"
    eventually(lambda: not any(n.metadata.name.startswith("extra-") for n in all_nodes(client)), timeout=10)
    assert {f"sim-node-{i}" for i in range(SIM_NODES)} <= {n.metadata.name for n in all_nodes(client)}
