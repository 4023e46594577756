"""The `fusioninfer` command line: offline tools (validate, render, crd), the operator (run),
and the local control plane used by the demo and the tests (cluster)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from fusioninfer.api.documents import Document, load_documents
from fusioninfer.builders import BuildOptions, Capabilities, build

app = typer.Typer(
    name="fusioninfer",
    help="FusionInfer: one InferenceService in, a complete LLM serving stack out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)

FileOption = Annotated[
    list[str],
    typer.Option("-f", "--filename", help="File with InferenceService YAML (several documents allowed); - for stdin."),
]


class OutputFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


def _read_documents(filenames: list[str]) -> list[Document]:
    documents: list[Document] = []
    for filename in filenames:
        if filename == "-":
            documents.extend(load_documents(sys.stdin.read(), "<stdin>"))
            continue
        path = Path(filename)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            stderr.print(f"error: cannot read {filename}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
        except UnicodeDecodeError:
            stderr.print(f"error: {filename} is not UTF-8 text")
            raise typer.Exit(1) from None
        documents.extend(load_documents(text, filename))
    return documents


def _report_errors(documents: list[Document]) -> bool:
    """Print every error of every document to stderr; True when there was any."""
    failed = False
    for doc in documents:
        for err in doc.errors:
            failed = True
            stderr.print(f"{doc.label}: {err}", markup=False)
    return failed


@app.command()
def validate(filename: FileOption) -> None:
    """Check InferenceService manifests; exit 1 and list every error (with its field path) if any is invalid."""
    documents = _read_documents(filename)
    if _report_errors(documents):
        raise typer.Exit(1)
    for doc in documents:
        typer.echo(f"{doc.label}: valid")


@app.command()
def render(
    filename: FileOption,
    output: Annotated[OutputFormat, typer.Option("-o", "--output", help="Output format.")] = OutputFormat.YAML,
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="Render as for a cluster without this optional API: "
            + ", ".join(Capabilities().__dict__)
            + " (repeatable).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace for services that name none.")
    ] = None,
) -> None:
    """Print every child object the operator would create, sorted in apply order."""
    known = set(Capabilities().__dict__)
    missing = {name.replace("-", "_") for name in without or []}
    unknown = sorted(missing - known)
    if unknown:
        stderr.print(f"error: unknown API for --without: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        raise typer.Exit(2)
    capabilities = Capabilities(**{name: name not in missing for name in known})
    documents = _read_documents(filename)
    if _report_errors(documents):
        raise typer.Exit(1)
    objects = []
    for doc in documents:
        assert doc.service is not None
        if namespace and not doc.service.metadata.namespace:
            doc.service.metadata.namespace = namespace
        result = build(doc.service, BuildOptions(capabilities=capabilities))
        for notice in result.notices:
            stderr.print(f"warning: {doc.label}: {notice.reason}: {notice.message}", markup=False)
        objects.extend(result.objects)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2, sort_keys=True))
    else:
        typer.echo(yaml.safe_dump_all(objects, sort_keys=True, width=120), nl=False)


@app.command()
def crd() -> None:
    """Print the InferenceService CustomResourceDefinition (generated from the API models)."""
    from fusioninfer.api.crd import crd_yaml

    typer.echo(crd_yaml(), nl=False)


def _mount_subcommands() -> None:
    import importlib.util

    if importlib.util.find_spec("fusioninfer.localcluster.cli") is None:  # TODO(integration): remove guard
        return
    from fusioninfer.localcluster.cli import cluster_app

    app.add_typer(cluster_app, name="cluster")


_mount_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
