"""`fusioninfer install`, `uninstall` and `rbac` (mounted by `fusioninfer.cli`).

Deploying the operator itself is `make deploy` / `make undeploy`: `kubectl apply --server-side -k`
and `kubectl delete -k` of `config/default`, as in every kubebuilder project; the operator's
command does not carry a second kustomize.

Kept apart from `cli.py` so the installer and the spec tools evolve independently; heavy
imports happen inside the commands, so `fusioninfer --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Kubeconfig = Annotated[
    str | None, typer.Option(envvar="KUBECONFIG", help="Kubeconfig file (default: $KUBECONFIG, then in-cluster).")
]


def install(
    kubeconfig: Kubeconfig = None,
    with_crds: Annotated[
        list[Path] | None,
        typer.Option("--with-crds", help="Also install the CRDs in this file or directory (repeatable)."),
    ] = None,
) -> None:
    """Install (or update) the InferenceService CRD, adapted to the server's Kubernetes version."""
    from fusioninfer.install.crds import install_crds

    for name in install_crds(kubeconfig, with_crds or []):
        typer.echo(f"customresourcedefinition {name} established")


def uninstall(kubeconfig: Kubeconfig = None) -> None:
    """Delete the InferenceService CRD (and with it every InferenceService and its children)."""
    from fusioninfer.install.crds import uninstall_crds

    removed = uninstall_crds(kubeconfig)
    typer.echo("customresourcedefinition inferenceservices.fusioninfer.io " + ("deleted" if removed else "not found"))


def rbac(
    rules_only: Annotated[bool, typer.Option("--rules-only", help="Print only the rule list (the chart's).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="List every permission with the code needing it.")] = False,
) -> None:
    """Print the operator's ClusterRole, derived from the child kinds, the informers and the picker's Role."""
    from fusioninfer.install import rbac as rbac_module

    if explain:
        typer.echo(rbac_module.explain(), nl=False)
    elif rules_only:
        typer.echo(rbac_module.rules_yaml(), nl=False)
    else:
        typer.echo(rbac_module.cluster_role_yaml(), nl=False)


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(uninstall)
    app.command()(rbac)
