"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, built from their Go modules) plus KWOK's simulated GPU nodes, for tests and the demo.

See docs/local-control-plane.md. Public API:

- `LocalCluster` (cluster.py): up/down/status/recover, component restarts, extra users, clients.
- `ensure_cluster_binaries` (build.py): find or build every binary the cluster runs.
- `NodeSpec`, `create_nodes`, `delete_nodes` (kwok.py): simulated nodes.
- `install_crds`, `ainstall_crds`, `BUNDLED_CRD_DIR` (crds.py): install CRD YAMLs and wait.
- `Podman`, `ensure_base_image` (image.py): the operator image with Podman here, on a
  stand-in for the Dockerfile's base image (docs/image.md).
"""

from fusioninfer.localcluster.build import ensure_cluster_binaries
from fusioninfer.localcluster.cluster import (
    ClusterAlreadyRunning,
    ClusterError,
    ClusterStatus,
    LocalCluster,
)
from fusioninfer.localcluster.components import TokenEntry

__all__ = [
    "ClusterAlreadyRunning",
    "ClusterError",
    "ClusterStatus",
    "LocalCluster",
    "TokenEntry",
    "ensure_cluster_binaries",
]
