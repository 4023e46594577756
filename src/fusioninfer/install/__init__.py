"""The installer: everything that puts the operator into a cluster or ships around it.

- `crds`: the CRD apply-and-wait (`fusioninfer install` / `uninstall`; the local cluster, the
  demo and the benchmark install their CRDs through it too): server-side apply, adapted to the
  server's version, then wait until every CRD is Established;
- `rbac`: the operator's ClusterRole, derived from what the code touches;
- `generate`: every file in `config/` and `charts/` derived from the code or `examples/`
  (`make manifests`);
- `commands`: the `fusioninfer install`, `uninstall` and `rbac` commands.

Everything here that produces a manifest is pure (no I/O); `crds` is the one module that talks
to a cluster.
"""
