"""A fresh local control plane per size: audit log on the two benchmarked ServiceAccounts,
the bundled CRDs, namespaces, and the capabilities the operator will discover."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding

from bench.kube import AuditLog, audit_policy
from bench.results import log
from fusioninfer.builders import Capabilities
from fusioninfer.builders.context import OPTIONAL_APIS
from fusioninfer.controller.discovery import capabilities_from, slim_crd
from fusioninfer.install.crds import install_crds
from fusioninfer.runtime.version import server_version
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR

T = TypeVar("T")

CONTROL_NS = "bench-system"

OPERATOR_SA = "operator"
LOWER_BOUND_SA = "lower-bound"
FIELD_MANAGER = "fusioninfer"  # the operator's field manager: the lower bound writes the same fields
BENCH_MANAGER = "bench"
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=fusioninfer"
LEASE_RESOURCE = "leases"
RECONCILE_HISTOGRAM = "controller_runtime_reconcile_time_seconds"
LEADER_GAUGE = "leader_election_master_status"
QUEUE_HISTOGRAM = "workqueue_queue_duration_seconds"
INFORMER_EVENTS = "fusioninfer_informer_events_total"
TRIGGERS = "fusioninfer_controller_triggers_total"
MEMO_LOOKUPS = "fusioninfer_reconcile_memo_lookups_total"
GC_PAUSES = "fusioninfer_gc_pause_seconds"


def lower_bound_ns(round_: int) -> str:
    """The lower bound's namespace in round `round_` (1-based): bench-lb, bench-lb2, ..."""
    return "bench-lb" if round_ == 1 else f"bench-lb{round_}"


def watching_lower_bound_ns(round_: int) -> str:
    """The namespace of round `round_`'s lower bound with the operator's watches (`--lb-watching`)."""
    return f"bench-lbw{round_}"


def operator_ns(round_: int) -> str:
    """The operator's namespace in round `round_`: bench-op (its full run: convergence, idle,
    edits), then bench-op2, ... (convergence only), each after that round's lower bound."""
    return "bench-op" if round_ == 1 else f"bench-op{round_}"


REPO_ROOT = Path(__file__).resolve().parents[1]


def sa_user(name: str) -> str:
    return f"system:serviceaccount:{CONTROL_NS}:{name}"


@dataclass
class Bench:
    cluster: LocalCluster
    audit: AuditLog
    operator_kubeconfig: Path
    lower_bound_kubeconfig: Path
    capabilities: Capabilities


def tmpfs() -> Path | None:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def start_cluster(work: Path, namespaces: Sequence[str], *, profiling: bool = False) -> Bench:
    """A control plane in `work` (whatever an earlier run left there is stopped and removed) with
    the benchmark's namespaces, its two ServiceAccounts and the audit log on them. `profiling`
    turns the apiserver's /debug/pprof on (the local cluster has it off) for `--profile-apiserver`."""
    work.mkdir(parents=True, exist_ok=True)
    policy = work / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(audit_policy([sa_user(OPERATOR_SA), sa_user(LOWER_BOUND_SA)])))
    audit_path = work / "audit.log"
    audit_path.unlink(missing_ok=True)
    state = work / "cluster"
    if state.exists():
        # Left by an interrupted run, perhaps with its processes still up: every run starts fresh.
        log(f"  stopping and removing the control plane an earlier run left in {state}")
        with contextlib.suppress(Exception):
            LocalCluster(state).down()
        shutil.rmtree(state, ignore_errors=True)
    cluster = LocalCluster(
        work / "cluster",
        etcd_parent_dir=tmpfs(),
        extra_apiserver_args=[
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_path}",
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
            *(["--profiling=true"] if profiling else []),
        ],
    )
    cluster.up()
    try:
        install_crds(cluster.kubeconfig_path, [BUNDLED_CRD_DIR])
        with cluster.client(field_manager=BENCH_MANAGER) as client:
            for ns in (CONTROL_NS, *namespaces):
                client.create(Namespace(metadata=ObjectMeta(name=ns)))
            for sa in (OPERATOR_SA, LOWER_BOUND_SA):
                client.create(ServiceAccount(metadata=ObjectMeta(name=sa, namespace=CONTROL_NS)))
                client.create(
                    ClusterRoleBinding(
                        metadata=ObjectMeta(name=f"bench-{sa}"),
                        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
                        subjects=[Subject(kind="ServiceAccount", name=sa, namespace=CONTROL_NS)],
                    )
                )
            caps = discover_capabilities(client)
        return Bench(
            cluster=cluster,
            audit=AuditLog(audit_path),
            operator_kubeconfig=cluster.service_account_kubeconfig(CONTROL_NS, OPERATOR_SA),
            lower_bound_kubeconfig=cluster.service_account_kubeconfig(CONTROL_NS, LOWER_BOUND_SA),
            capabilities=caps,
        )
    except BaseException:
        cluster.down()
        raise


def discover_capabilities(client: Client) -> Capabilities:
    """What the operator will see: established CRDs (as its discovery reads them) + the version."""
    caps = capabilities_from([slim_crd(c.to_dict()) for c in client.list(CustomResourceDefinition)])
    return Capabilities.of({name: getattr(caps, name) for name in OPTIONAL_APIS}, server_version(client))
