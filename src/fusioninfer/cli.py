"""The `fusioninfer` command line: offline tools (validate, render, crd), the operator (run),
and the local control plane used by the demo and the tests (cluster)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fusioninfer",
    help="FusionInfer: one InferenceService in, a complete LLM serving stack out.",
    no_args_is_help=True,
    add_completion=False,
)


def _mount_subcommands() -> None:
    from fusioninfer.localcluster.cli import cluster_app

    app.add_typer(cluster_app, name="cluster")


_mount_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
