"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, built from their Go modules) plus KWOK's simulated GPU nodes, for tests and the demo.

See docs/local-control-plane.md. The package itself imports nothing, so a small helper (the
supervisor, the fakes) starts without loading the cluster's machinery. Its parts:

- `LocalCluster` (cluster.py): up/down/status/recover, component restarts, extra users, clients.
- `ensure_cluster_binaries` (build.py): find or build every binary the cluster runs.
- `NodeSpec`, `create_nodes`, `delete_nodes` (kwok.py): simulated nodes.
- `install_crds`, `BUNDLED_CRD_DIR` (crds.py): install CRD YAMLs and wait.
- `Podman`, `ensure_base_image` (image.py): the operator image with Podman here, on a
  stand-in for the Dockerfile's base image (docs/image.md).
"""
