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
from fusioninfer.builders.context import OPTIONAL_APIS

app = typer.Typer(
    name="fusioninfer",
    help="FusionInfer: one InferenceService in, a complete LLM serving stack out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
# Entry-point group other distributions add commands under (see `_mount_plugin_commands`).
PLUGIN_GROUP = "fusioninfer.commands"

FileOption = Annotated[
    list[str],
    typer.Option("-f", "--filename", help="File with InferenceService YAML (several documents allowed); - for stdin."),
]


def _print_error(text: str) -> None:
    """Print a line to stderr exactly as given.

    Our messages carry file names and users' values; rich would read `[b]` in them as markup
    (mangling the text, or raising MarkupError on `[/b]`) and `:smile:` as an emoji code.
    """
    stderr.print(text, markup=False, emoji=False)


class OutputFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


def _read_documents(filenames: list[str]) -> list[Document]:
    documents: list[Document] = []
    for filename in filenames:
        if filename == "-":
            try:
                stdin = sys.stdin.read()
            except UnicodeDecodeError:
                _print_error("error: <stdin> is not UTF-8 text")
                raise typer.Exit(1) from None
            documents.extend(load_documents(stdin, "<stdin>"))
            continue
        path = Path(filename)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            _print_error(f"error: cannot read {filename}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
        except UnicodeDecodeError:
            _print_error(f"error: {filename} is not UTF-8 text")
            raise typer.Exit(1) from None
        documents.extend(load_documents(text, filename))
    return documents


def _report_errors(documents: list[Document]) -> bool:
    """Print every error of every document to stderr; True when there was any."""
    failed = False
    for doc in documents:
        for err in doc.errors:
            failed = True
            _print_error(f"{doc.label}: {err}")
    return failed


@app.command()
def validate(
    filename: FileOption,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Also fail on what would keep the engine from starting (e.g. a removed connector)."
        ),
    ] = False,
) -> None:
    """Check InferenceService manifests; exit 1 and list every error (with its field path) if any is invalid.

    Warnings (what the operator also reports in `SpecWarnings`) are printed too; those that would
    keep the engine from starting are marked, and fail the check with `--strict`."""
    documents = _read_documents(filename)
    if _report_errors(documents):
        raise typer.Exit(1)
    failed = False
    for doc in documents:
        assert doc.service is not None
        notices = build(doc.service, BuildOptions()).notices
        for notice in notices:
            if notice.stops_the_engine:
                level = "error" if strict else "warning (an error with --strict)"
                _print_error(f"{level}: {doc.label}: {notice.reason}: {notice.message}")
                failed = failed or strict
            else:
                _print_error(f"warning: {doc.label}: {notice.reason}: {notice.message}")
        if not (strict and any(n.stops_the_engine for n in notices)):
            typer.echo(f"{doc.label}: valid" + (" (with warnings)" if notices else ""))
    if failed:
        raise typer.Exit(1)


@app.command()
def render(
    filename: FileOption,
    output: Annotated[OutputFormat, typer.Option("-o", "--output", help="Output format.")] = OutputFormat.YAML,
    without: Annotated[
        list[str] | None,
        typer.Option(
            "--without",
            help="Render as for a cluster without this optional API: " + ", ".join(OPTIONAL_APIS) + " (repeatable).",
        ),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace for services that name none.")
    ] = None,
) -> None:
    """Print every child object the operator would create, sorted in apply order."""
    known = set(OPTIONAL_APIS)
    missing = {name.replace("-", "_") for name in without or []}
    unknown = sorted(missing - known)
    if unknown:
        _print_error(f"error: unknown API for --without: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        raise typer.Exit(2)
    capabilities = Capabilities.of({name: name not in missing for name in known})
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
            _print_error(f"warning: {doc.label}: {notice.reason}: {notice.message}")
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


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


@app.command()
def run(
    kubeconfig: Annotated[
        str | None,
        typer.Option(envvar="KUBECONFIG", help="Kubeconfig file (default: $KUBECONFIG, then in-cluster config)."),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "-n", "--namespace", envvar="WATCH_NAMESPACES", help="Namespace to watch (repeatable; default: all)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(envvar="WORKERS", min=1, help="Concurrent reconciles.")] = 4,
    metrics_bind_address: Annotated[
        str, typer.Option(envvar="METRICS_BIND_ADDRESS", help="[HOST]:PORT for /metrics; 0 disables.")
    ] = ":8080",
    health_probe_bind_address: Annotated[
        str, typer.Option(envvar="HEALTH_PROBE_BIND_ADDRESS", help="[HOST]:PORT for /healthz and /readyz.")
    ] = ":8081",
    leader_elect: Annotated[
        bool, typer.Option(envvar="LEADER_ELECT", help="Elect a leader on a Lease; only the leader reconciles.")
    ] = True,
    leader_election_namespace: Annotated[
        str | None, typer.Option(envvar="LEADER_ELECTION_NAMESPACE", help="Namespace of the Lease.")
    ] = None,
    lease_duration: Annotated[float, typer.Option(help="Seconds a lease is valid without renewal.")] = 15.0,
    renew_deadline: Annotated[float, typer.Option(help="Seconds the leader retries renewing.")] = 10.0,
    retry_period: Annotated[float, typer.Option(help="Seconds between lease attempts.")] = 2.0,
    log_format: Annotated[LogFormat, typer.Option(envvar="LOG_FORMAT")] = LogFormat.CONSOLE,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "info",
    epp_image: Annotated[str | None, typer.Option(envvar="EPP_IMAGE", help="Default endpoint picker image.")] = None,
    pd_epp_image: Annotated[
        str | None, typer.Option(envvar="PD_EPP_IMAGE", help="Default endpoint picker image for P/D.")
    ] = None,
    routing_sidecar_image: Annotated[
        str | None, typer.Option(envvar="ROUTING_SIDECAR_IMAGE", help="Default P/D routing sidecar image.")
    ] = None,
) -> None:
    """Run the operator: watch InferenceServices and reconcile their children until SIGTERM."""
    from fusioninfer.controller.main import RunOptions, default_lease_namespace, parse_bind
    from fusioninfer.controller.main import run as run_operator
    from fusioninfer.controller.operator import OperatorConfig, ProcessConfig
    from fusioninfer.runtime.logs import setup_logging

    setup_logging(log_format.value, log_level)  # type: ignore[arg-type]
    namespaces = [n for item in namespace or [] for n in item.split(",") if n] or None
    try:
        metrics = parse_bind(metrics_bind_address)
        health = parse_bind(health_probe_bind_address)
    except ValueError as exc:
        stderr.print(f"error: {exc}")
        raise typer.Exit(2) from None
    options = RunOptions(
        kubeconfig=kubeconfig,
        operator=OperatorConfig(
            namespaces=namespaces,
            workers=workers,
            build_options=BuildOptions(
                epp_image=epp_image, pd_epp_image=pd_epp_image, routing_sidecar_image=routing_sidecar_image
            ),
        ),
        process=ProcessConfig(
            metrics_bind=metrics,
            health_bind=health,
            leader_election=leader_elect,
            lease_namespace=leader_election_namespace or default_lease_namespace(),
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        ),
    )
    run_operator(options)


KubeconfigOption = Annotated[
    str | None, typer.Option(envvar="KUBECONFIG", help="Kubeconfig file (default: $KUBECONFIG, then in-cluster).")
]


class StatusFormat(StrEnum):
    TABLE = "table"
    YAML = "yaml"
    JSON = "json"


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="The InferenceService (omit with --all).")] = None,
    namespace: Annotated[str | None, typer.Option("-n", "--namespace", help="Default: the kubeconfig's.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every InferenceService in the namespace.")] = False,
    output: Annotated[StatusFormat, typer.Option("-o", "--output", help="table, or yaml/json for scripts.")] = (
        StatusFormat.TABLE
    ),
    kubeconfig: KubeconfigOption = None,
) -> None:
    """Show a service: its children and their state, per-role components, conditions and last Events.

    Read-only: a viewer's RBAC (get/list of the services, their children and Events) is enough."""
    from fusioninfer.status_view import run_status

    if (name is None) == (not every):
        _print_error("error: give an InferenceService name, or --all")
        raise typer.Exit(2)
    code = run_status(kubeconfig, namespace, None if every else name, output.value)
    raise typer.Exit(code)


def _mount_plugin_commands() -> None:
    """Commands other distributions add under the entry-point group `fusioninfer.commands`: the
    development harness (`fusioninfer-dev`: `cluster`, `demo`) when it is installed. A Typer app
    becomes a command group, a function a command. The operator never imports the harness by name."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        command = entry.load()
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=entry.name)
        else:
            app.command(entry.name)(command)


_mount_plugin_commands()


def _mount_shipping_commands() -> None:
    """`install`, `uninstall`, `rbac`: the installer's commands, defined in
    `fusioninfer.install.commands`."""
    from fusioninfer.install.commands import register

    register(app)


_mount_shipping_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
