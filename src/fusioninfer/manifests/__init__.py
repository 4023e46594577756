"""What ships around the operator: its RBAC (derived from the code), the kustomize layout in
`config/` and the Helm chart in `charts/`, and the deploy/undeploy logic of `make deploy`.

Everything here that produces a manifest is pure (no I/O); `deploy` is the one module that
talks to a cluster.
"""
