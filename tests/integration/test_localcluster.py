"""Tests of the local control plane harness itself: lifecycle, process safety, recovery without
data loss, KWOK nodes against the real scheduler and controller-manager, garbage collection,
apiserver restarts and extra users."""

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

import httpx
import pytest
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Node, Pod, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import PatchType
from tests.support.eventually import eventually, eventually_async
from typer.testing import CliRunner

from fusioninfer_dev.commands import cluster_app
from fusioninfer_dev.localcluster.build import KUBERNETES_VERSION
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.components import (
    APISERVER,
    CONTROLLER_MANAGER,
    ETCD,
    KWOK,
    LWS,
    METRICS_ADAPTER,
    SCHEDULER,
)
from fusioninfer_dev.localcluster.kwok import NodeSpec, create_nodes, delete_nodes
from fusioninfer_dev.localcluster.processes import ProcessRecord, is_our_process, proc_start_time
from fusioninfer_dev.localcluster.state import STATE_VERSION, ClusterAlreadyRunning, ClusterError

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
    start = proc_start_time(foreign_process.pid)
    assert start is not None
    records = {
        # Same PID, somebody else's argv (what a recycled PID looks like).
        ETCD: ProcessRecord(ETCD, foreign_process.pid, ["/usr/bin/etcd", "--data-dir=x"], start, "x.log"),
        # Same PID and argv but another start time: an older process that had this PID.
        APISERVER: ProcessRecord(APISERVER, foreign_process.pid, real_argv, start - 1, "y.log"),
    }
    state = {
        "version": STATE_VERSION,
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


def test_cli_up_status_down_with_kwok_nodes(tmp_path: Path, foreign_process: subprocess.Popen[bytes]) -> None:
    """`fusioninfer cluster up --nodes 1` -> a ready cluster with a KWOK node; `status`
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
        for name in (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK, LWS):
            assert name in status.output
        assert "NOT" not in status.output

        again = runner.invoke(cluster_app, ["up", "--state-dir", str(state_dir)])
        assert again.exit_code == 0
        assert "already running" in again.output

        with Client(config=KubeConfig.from_file(kubeconfig)) as c:
            node: Any = c.get(Node, "sim-node-0")
            assert node.status.allocatable["nvidia.com/gpu"] == "2"
            eventually(lambda: conditions(get_any(c, Node, "sim-node-0")).get("Ready") == "True", timeout=30)

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
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of our own for tests that restart or kill components, so the session's cluster is
    never disturbed; with one KWOK node."""
    cluster = LocalCluster(tmp_path_factory.mktemp("private-cluster"), etcd_parent_dir=tmpfs_dir())
    try:
        cluster.up()
        cluster.add_nodes(1, pool="priv")
        yield cluster
    finally:
        cluster.down()


def test_status_version_and_loopback_only(private_cluster: LocalCluster) -> None:
    cluster = private_cluster
    status = LocalCluster(cluster.state_dir).status()  # a fresh object reads the state file
    assert status.running
    assert status.ready
    assert [c.name for c in status.components] == [
        ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK, LWS, METRICS_ADAPTER
    ]  # fmt: skip
    assert status.kubeconfig == cluster.kubeconfig_path
    with pytest.raises(ClusterAlreadyRunning):
        LocalCluster(cluster.state_dir).up()

    # /version reports the release we built (ldflags), not v0.0.0-master.
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}
    version = httpx.get(f"{cluster.server}/version", headers=headers, verify=False, trust_env=False).json()
    assert version["gitVersion"] == KUBERNETES_VERSION

    listening: dict[str, set[tuple[str, int]]] = {
        name: listening_addresses(rec.pid) for name, rec in cluster.processes().items()
    }
    assert listening[APISERVER] == {("127.0.0.1", cluster.ports["apiserver"])}
    assert {port for _, port in listening[ETCD]} == {cluster.ports["etcd_client"], cluster.ports["etcd_peer"]}
    for name, addresses in listening.items():
        for ip, port in addresses:
            assert ip == "127.0.0.1", f"{name} listens on {ip}:{port}"
    assert listening[CONTROLLER_MANAGER] == set()
    assert listening[SCHEDULER] == {("127.0.0.1", cluster.ports["scheduler"])}
    assert listening[KWOK] == {("127.0.0.1", cluster.ports["kwok"])}
    # The LWS metrics server comes up a moment after its webhooks and health checks (which `up` waits for).
    lws_ports = {("127.0.0.1", cluster.ports[p]) for p in ("lws_webhook", "lws_metrics", "lws_health")}
    eventually(lambda: listening_addresses(cluster.processes()[LWS].pid) == lws_ports, timeout=15)


def test_apiserver_restart_keeps_data_and_everything_recovers(private_cluster: LocalCluster) -> None:
    """Only the apiserver restarts (new PID, same port); data survives in etcd, and the
    controller-manager, scheduler and KWOK reconnect by themselves."""
    cluster = private_cluster
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
    for name in (ETCD, CONTROLLER_MANAGER, SCHEDULER, KWOK):
        assert after[name].pid == before[name].pid
        assert is_our_process(after[name])
    with cluster.client(field_manager=FM) as c:
        assert c.get(ConfigMap, "survivor", namespace="default").data == {"k": "v"}
        c.patch(Deployment, "restart-web", {"spec": {"replicas": 3}}, namespace="default")
        eventually(
            lambda: get_any(c, Deployment, "restart-web", "default").status.readyReplicas == 3,
            timeout=60,
            message="controller-manager, scheduler and KWOK should recover after the restart",
        )


def test_up_after_a_crash_restarts_what_died_and_keeps_the_data(private_cluster: LocalCluster) -> None:
    """A state dir whose apiserver and etcd died (SIGKILL) comes back with `cluster up`: same
    ports, same data, the survivors untouched. (It used to delete etcd's data and start empty.)"""
    cluster = private_cluster
    with cluster.client(field_manager=FM) as c:
        apply(
            c,
            ConfigMap,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "precious", "namespace": "default"}},
        )
    before = cluster.processes()
    for name in (APISERVER, ETCD):
        os.kill(before[name].pid, 9)
    eventually(lambda: set(LocalCluster(cluster.state_dir).dead_components()) == {APISERVER, ETCD}, timeout=10)

    result = CliRunner().invoke(cluster_app, ["up", "--state-dir", str(cluster.state_dir)])

    assert result.exit_code == 0, result.output
    assert "Restarted etcd, kube-apiserver on the existing data" in result.output
    revived = LocalCluster(cluster.state_dir)
    assert revived.is_running()
    after = revived.processes()
    assert after[CONTROLLER_MANAGER].pid == before[CONTROLLER_MANAGER].pid
    assert revived.ports == cluster.ports
    with revived.client() as c:
        assert c.get(ConfigMap, "precious", namespace="default").metadata.name == "precious"


def test_cli_restart_one_component(private_cluster: LocalCluster) -> None:
    cluster = private_cluster
    before = LocalCluster(cluster.state_dir).processes()[SCHEDULER]
    result = CliRunner().invoke(cluster_app, ["restart", SCHEDULER, "--state-dir", str(cluster.state_dir)])
    assert result.exit_code == 0, result.output
    after = LocalCluster(cluster.state_dir).processes()[SCHEDULER]
    assert after.pid != before.pid
    assert is_our_process(after)
    assert not is_our_process(before)
    bad = CliRunner().invoke(cluster_app, ["restart", "kubelet", "--state-dir", str(cluster.state_dir)])
    assert bad.exit_code == 2
    assert "unknown component" in bad.output


def test_up_refuses_when_etcd_data_is_gone(tmp_path: Path) -> None:
    """No silent empty restart: without etcd's data `up` refuses and says how to start over."""
    cluster = LocalCluster(tmp_path / "state", etcd_parent_dir=tmpfs_dir())
    cluster.up()
    try:
        os.kill(cluster.processes()[ETCD].pid, 9)
        data_dir = cluster.etcd_data_dir
        eventually(lambda: ETCD in LocalCluster(cluster.state_dir).dead_components(), timeout=10)
        import shutil

        shutil.rmtree(data_dir / "member")
        with pytest.raises(ClusterError, match=r"cluster down --state-dir"):
            LocalCluster(cluster.state_dir).up()
    finally:
        LocalCluster(cluster.state_dir).down()


def test_down_all_under_stops_every_state_dir(tmp_path: Path) -> None:
    """`make clean` runs `cluster down --all-under .fusioninfer`: every cluster below, not just one."""
    root = tmp_path / ".fusioninfer"
    clusters = [LocalCluster(root / name, etcd_parent_dir=tmpfs_dir()) for name in ("cluster", "demo")]
    records: list[ProcessRecord] = []
    try:
        for cl in clusters:
            cl.up()
            records += cl.processes().values()
        result = CliRunner().invoke(cluster_app, ["down", "--all-under", str(root)])
        assert result.exit_code == 0, result.output
        for rec in records:
            assert not is_our_process(rec), f"{rec.name} still running"
        assert not (root / "cluster").exists()
        assert not (root / "demo").exists()
    finally:
        for cl in clusters:
            LocalCluster(cl.state_dir).down()


def test_static_token_user_is_subject_to_rbac(private_cluster: LocalCluster) -> None:
    """`add_user` gives a test its own identity; RBAC (not the admin's system:masters) decides."""
    cluster = private_cluster
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
# the session cluster: KWOK nodes, scheduler, controllers
# --------------------------------------------------------------------------------------------


def test_simulated_nodes_are_registered_ready_with_gpus(client: Client) -> None:
    nodes = [n for n in all_nodes(client) if n.metadata.name.startswith("sim-node-")]
    assert sorted(n.metadata.name for n in nodes) == [f"sim-node-{i}" for i in range(SIM_NODES)]
    for node in nodes:
        assert node.status.allocatable["nvidia.com/gpu"] == str(SIM_GPUS_PER_NODE)
        assert node.status.capacity["cpu"] == "32"
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert not node.spec.taints
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        lease = get_any(client, Lease, node.metadata.name, "kube-node-lease")
        renewed = lease.spec.renewTime
        assert dt.datetime.now(dt.UTC) - renewed < dt.timedelta(seconds=60)


def test_deployment_pods_become_ready_on_simulated_nodes(client: Client, namespace: str, cluster: LocalCluster) -> None:
    """Real Deployment + ReplicaSet controllers and scheduler, plus KWOK: available, with pod IPs
    from the node's CIDR in the cluster's loopback block (kwok.py)."""
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
        node = client.get(Node, p.spec.nodeName)
        assert ipaddress.ip_address(p.status.podIP) in ipaddress.ip_network(node.spec.podCIDR), "from its node's CIDR"
        assert ipaddress.ip_address(p.status.podIP) in ipaddress.ip_network(str(cluster.pod_block))
        assert p.status.hostIP == "10.240.0.1"
        (cs,) = p.status.containerStatuses
        assert cs.name == "engine"
        assert cs.ready
        assert cs.state.running is not None
        ips.add(p.status.podIP)
    assert len(ips) == 3, "pod IPs must be unique"

    # Scaling down deletes pods gracefully; with no kubelet, KWOK must finish the job.
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


def test_extra_nodes_share_the_cluster_and_go_away(cluster: LocalCluster, client: Client) -> None:
    """Tests may add nodes of their own (e.g. a GPU type) next to the session's; KWOK runs them."""
    names = ["extra-0", "extra-1"]
    create_nodes(client, names, NodeSpec(gpus=1), pool="extra")
    try:
        for name in names:
            eventually(lambda n=name: conditions(get_any(client, Node, n)).get("Ready") == "True", timeout=30)
        assert get_any(client, Node, "extra-0").status.allocatable["nvidia.com/gpu"] == "1"
    finally:
        delete_nodes(client, names)
    eventually(lambda: not any(n.metadata.name.startswith("extra-") for n in all_nodes(client)), timeout=10)
    assert {f"sim-node-{i}" for i in range(SIM_NODES)} <= {n.metadata.name for n in all_nodes(client)}


def test_a_pod_metric_written_to_the_adapter_is_served_by_the_apiserver(
    cluster: LocalCluster, client: Client, namespace: str
) -> None:
    """The custom metrics API behind the aggregation layer, as the HPA controller reads it: the
    apiserver proxies with its client certificate, the adapter lists the pods the selector names
    and answers with the value last written for each."""
    from fusioninfer_dev.localcluster.metrics_api import write_url

    pod = Pod.from_dict({
        "metadata": {"name": "engine-0", "labels": {"app": "engine"}},
        "spec": {"containers": [{"name": "c", "image": "vllm/vllm-openai:v0.11.0"}]},
    })  # fmt: skip
    client.create(pod, namespace=namespace)
    metric = "vllm:num_requests_waiting"
    written = httpx.post(write_url(cluster.metrics_write_port, namespace, "engine-0", metric), json="1500m")
    assert written.status_code == 200, written.text
    path = f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}?labelSelector=app%3Dengine"
    headers = {"Authorization": f"Bearer {cluster.admin_token}"}

    def served() -> dict[str, Any]:
        with httpx.Client(verify=False, trust_env=False) as http:
            reply = http.get(cluster.server + path, headers=headers)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    body = eventually(served, timeout=30, interval=0.5)
    (item,) = body["items"]
    assert item["describedObject"]["name"] == "engine-0"
    assert item["metric"]["name"] == metric
    assert item["value"] == "1500m"
