"""A real local Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager +
kube-scheduler, v1.20.2 built from Debian source) plus a node simulator, for tests and the demo.

See docs/local-control-plane.md. Public API:

- `LocalCluster` (cluster.py): up/down/status, apiserver restart, extra users, clients.
- `NodeSimulator` (nodesim.py): fake GPU nodes whose bound Pods become Running/Ready.
- `ensure_binaries` (build.py): find or build the control-plane binaries.
- `install_crds`, `ainstall_crds`, `BUNDLED_CRD_DIR` (crds.py): install CRD YAMLs and wait.
"""

from fusioninfer.localcluster.build import ensure_binaries
from fusioninfer.localcluster.cluster import (
    ClusterAlreadyRunning,
    ClusterError,
    ClusterStatus,
    LocalCluster,
    TokenEntry,
)

__all__ = [
    "ClusterAlreadyRunning",
    "ClusterError",
    "ClusterStatus",
    "LocalCluster",
    "TokenEntry",
    "ensure_binaries",
]
