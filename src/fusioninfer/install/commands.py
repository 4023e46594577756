"""`fusioninfer install`, `uninstall`, `rbac`, `deploy` and `undeploy` (mounted by `fusioninfer.cli`).

Kept apart from `cli.py` so the installer and the spec tools evolve independently; heavy
imports happen inside the commands, so `fusioninfer --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_KUSTOMIZATION = Path("config/default")

KustomizeDir = Annotated[
    Path, typer.Option("-k", "--kustomize", help="Kustomization directory to render (kustomize subset, no kubectl).")
]
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


def _render_or_exit(directory: Path, image: str | None) -> list[dict[str, object]]:
    from fusioninfer.install.kustomize import KustomizeError, render

    try:
        return render(directory, image=image)
    except (KustomizeError, OSError) as exc:
        stderr.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


def deploy(
    img: Annotated[
        str | None, typer.Option("--img", envvar="IMG", help="Operator image (replaces the `fusioninfer` image).")
    ] = None,
    kustomize: KustomizeDir = DEFAULT_KUSTOMIZATION,
    kubeconfig: Kubeconfig = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the rendered YAML instead of applying.")] = False,
) -> None:
    """Apply a kustomization (default config/default: namespace, CRD, RBAC, operator Deployment)."""
    objects = _render_or_exit(kustomize, img)
    if dry_run:
        from fusioninfer.install.kustomize import to_yaml

        typer.echo(to_yaml(objects), nl=False)
        return
    from fusioninfer.install.deploy import deploy as apply_all

    for line in apply_all(objects, kubeconfig):
        typer.echo(line)


def undeploy(kustomize: KustomizeDir = DEFAULT_KUSTOMIZATION, kubeconfig: Kubeconfig = None) -> None:
    """Delete what `deploy` applied (for config/default: the operator, its RBAC, the CRD and every InferenceService)."""
    objects = _render_or_exit(kustomize, None)
    from fusioninfer.install.deploy import undeploy as delete_all

    for line in delete_all(objects, kubeconfig):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command()(install)
    app.command()(uninstall)
    app.command()(rbac)
    app.command()(deploy)
    app.command()(undeploy)
