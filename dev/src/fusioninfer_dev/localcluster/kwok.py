"""Simulated GPU nodes with KWOK (`sigs.k8s.io/kwok`), the upstream kubelet simulator.

The local control plane has no kubelet and no container runtime. KWOK plays every kubelet: it
keeps the Nodes it manages Ready (conditions, leases) and drives Pods bound to them through its
default stages to Running/Ready with a pod IP. It does not schedule: kube-scheduler binds.

We create the Node objects ourselves (with the capacity a GPU node reports, e.g.
`nvidia.com/gpu: 8`) and mark them with the annotation KWOK selects on, so KWOK manages exactly
our nodes and nothing else. Everything here except `create_nodes`/`delete_nodes` is pure.

Pod addresses: the local cluster owns one loopback block, `127.B.0.0/16` (B chosen per cluster,
so that several clusters on one machine do not meet). Each node it creates gets a free /24 of
that block as `spec.podCIDR`, which KWOK allocates its pods' IPs from; every 127/8 address is
local on Linux, so the pod runner (`podrunner.py`) can start a process listening on exactly the
pod's IP. The block's first /24 is kept for Gateway addresses. Nodes created without a block get
no podCIDR, and their pods IPs from `POD_CIDR` that nothing listens on.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusioninfer.api.labels import LABEL_SIMULATED_NODE
from fusioninfer_dev.localcluster.build import KWOK_VERSION

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
GPU_RESOURCE = "nvidia.com/gpu"
POD_CIDR = "10.244.0.0/16"
NODE_IP = "10.240.0.1"
FIELD_MANAGER = "fusioninfer-localcluster"


@dataclass(frozen=True)
class NodeSpec:
    """Capacity and identity of simulated nodes."""

    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    gpus: int = 8
    gpu_product: str = "NVIDIA-A100-SXM4-80GB"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()


def kwok_args(binary: Path, kubeconfig: Path, *, server_port: int) -> list[str]:
    """KWOK out of cluster, managing only the nodes annotated `kwok.x-k8s.io/node=fake`.

    `--server-address` serves KWOK's health and metrics on loopback (a free port): its default
    would listen on every address.
    """
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
        f"--cidr={POD_CIDR}",
        f"--node-ip={NODE_IP}",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{server_port}",
    ]


def free_node_subnets(block: str, used: Iterable[str], count: int) -> list[str]:
    """`count` /24s of `block` that no node holds yet, skipping the first (Gateway addresses)."""
    taken = {ipaddress.ip_network(cidr, strict=False) for cidr in used}
    free = [str(net) for net in list(ipaddress.ip_network(block).subnets(new_prefix=24))[1:] if net not in taken]
    if len(free) < count:
        raise RuntimeError(f"pod address block {block} has {len(free)} free /24s left, {count} nodes asked for")
    return free[:count]


def node_manifest(name: str, spec: NodeSpec, *, pool: str, pod_cidr: str | None = None) -> dict[str, Any]:
    """A Node as a GPU node's kubelet would register it: labels, capacity and allocatable.

    `pool` goes into the `fusioninfer.io/simulated-node` label so that a group of nodes (the
    session's, one test's private ones) can be listed and deleted together.
    """
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": str(spec.pods),
        "ephemeral-storage": "1Ti",
        GPU_RESOURCE: str(spec.gpus),
    }
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "fusioninfer-kwok",
        "type": "kwok",
        LABEL_SIMULATED_NODE: pool,
        **(
            {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": spec.gpu_product,
                "nvidia.com/gpu.count": str(spec.gpus),
            }
            if spec.gpus > 0
            else {}
        ),
        **spec.labels,
    }
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {
            **({"taints": [dict(t) for t in spec.taints]} if spec.taints else {}),
            **({"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}),
        },
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": f"fake-kwok-{KWOK_VERSION}",
                "kubeProxyVersion": f"fake-kwok-{KWOK_VERSION}",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        },
    }
    return node


def node_names(prefix: str, count: int) -> list[str]:
    """`prefix-0` ... `prefix-(count-1)`."""
    return [f"{prefix}-{i}" for i in range(count)]


def create_nodes(
    client: Any, names: Iterable[str], spec: NodeSpec, *, pool: str, pod_block: str | None = None
) -> list[str]:
    """Create (or keep) one Node per name with a sync lightkube client; KWOK takes them over.

    Create, not apply: a Node's status can only be given at creation (later writes of status go
    through `nodes/status`, which KWOK owns from then on). An existing Node is left as it is.
    With `pod_block`, each new node gets a free /24 of it as its pod CIDR.
    """
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Node

    names = list(names)
    cidrs: list[str | None] = [None] * len(names)
    if pod_block is not None:
        used = [n.spec.podCIDR for n in client.list(Node) if n.spec is not None and n.spec.podCIDR]
        cidrs = list(free_node_subnets(pod_block, used, len(names)))
    created = []
    for name, cidr in zip(names, cidrs, strict=True):
        try:
            client.create(Node.from_dict(node_manifest(name, spec, pool=pool, pod_cidr=cidr)))
        except ApiError as exc:
            if exc.status.code != 409:
                raise
        created.append(name)
    return created


def delete_nodes(client: Any, names: Iterable[str]) -> None:
    """Delete the Nodes (missing ones are fine); the pod GC removes Pods bound to them."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Node

    for name in names:
        try:
            client.delete(Node, name)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
