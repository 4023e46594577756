"""`fusioninfer rbac`, `fusioninfer deploy` and `fusioninfer undeploy` (mounted by `fusioninfer.cli`).

Kept apart from `cli.py` so the shipping commands and the spec tools evolve independently;
heavy imports happen inside the commands, so `fusioninfer --help` stays fast.
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


def rbac(
    rules_only: Annotated[bool, typer.Option("--rules-only", help="Print only the rule list (the chart's).")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="List every permission with the code needing it.")] = False,
) -> None:
    """Print the operator's ClusterRole, derived from the child kinds, the informers and the picker's Role."""
    from fusioninfer.manifests import rbac as rbac_module

    if explain:
        typer.echo(rbac_module.explain(), nl=False)
    elif rules_only:
        typer.echo(rbac_module.rules_yaml(), nl=False)
    else:
        typer.echo(rbac_module.cluster_role_yaml(), nl=False)


def _render_or_exit(directory: Path, image: str | None) -> list[dict[str, object]]:
    from fusioninfer.manifests.kustomize import KustomizeError, render

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
        from fusioninfer.manifests.kustomize import to_yaml

        typer.echo(to_yaml(objects), nl=False)
        return
    from fusioninfer.manifests.deploy import deploy as apply_all

    for line in apply_all(objects, kubeconfig):
        typer.echo(line)


def undeploy(kustomize: KustomizeDir = DEFAULT_KUSTOMIZATION, kubeconfig: Kubeconfig = None) -> None:
    """Delete what `deploy` applied (for config/default: the operator, its RBAC, the CRD and every InferenceService)."""
    objects = _render_or_exit(kustomize, None)
    from fusioninfer.manifests.deploy import undeploy as delete_all

    for line in delete_all(objects, kubeconfig):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command()(rbac)
    app.command()(deploy)
    app.command()(undeploy)
