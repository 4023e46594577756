"""`fusioninfer cluster up|down|status|restart|build` and `fusioninfer demo`: the development
harness from the command line, mounted into `fusioninfer` through the entry-point group
`fusioninfer.commands` (see this distribution's pyproject.toml).

`up` leaves the processes running in the background (detached from the terminal) and returns once
the apiserver is ready; `down` stops exactly those processes, identified by the state dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusioninfer_dev.localcluster.build import (
    CLUSTER_COMPONENTS,
    PICKER_COMPONENTS,
    TOOL_COMPONENTS,
    BuildError,
    cache_root,
    component_dir,
    ensure_component,
    missing_binaries,
)
from fusioninfer_dev.localcluster.cluster import LocalCluster
from fusioninfer_dev.localcluster.components import COMPONENT_ORDER, FAKES, KWOK
from fusioninfer_dev.localcluster.state import DEFAULT_STATE_DIR, ClusterAlreadyRunning, ClusterError, find_state_dirs

cluster_app = typer.Typer(
    help="A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, "
    "built from their Go modules) plus simulated GPU nodes (KWOK), on 127.0.0.1.",
    no_args_is_help=True,
    add_completion=False,
)

StateDir = Annotated[
    Path,
    typer.Option("--state-dir", help="Where ports, PIDs, keys, kubeconfig and logs live.", show_default=True),
]


def _echo_usage(cluster: LocalCluster) -> None:
    kubeconfig = cluster.kubeconfig_path
    typer.echo(f"apiserver:  {cluster.server}")
    typer.echo(f"kubeconfig: {kubeconfig}")
    typer.echo(f"logs:       {cluster.logs_dir}")
    typer.echo("")
    typer.echo("Use it with:")
    typer.echo(f"  export KUBECONFIG={kubeconfig}")


@cluster_app.command()
def up(
    nodes: Annotated[int, typer.Option(help="Simulated nodes to run (0: none, Pods stay Pending).")] = 0,
    gpus_per_node: Annotated[int, typer.Option(help="nvidia.com/gpu capacity of each simulated node.")] = 8,
    fake_controllers: Annotated[
        bool | None,
        typer.Option(
            "--fake-controllers/--no-fake-controllers",
            help="Run the stand-in Volcano and gateway controllers (default: on with --nodes).",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Start the control plane (building the binaries first if needed) and wait until it is ready.

    On a state dir whose processes died, restarts them on the same ports and data (nothing is
    deleted); `down` is the only way to start over."""
    cluster = LocalCluster(state_dir)
    dead = cluster.dead_components() if cluster.processes() else []
    try:
        cluster.up(nodes=nodes, gpus_per_node=gpus_per_node, fake_controllers=fake_controllers)
    except ClusterAlreadyRunning:
        typer.echo(f"A cluster is already running from {cluster.state_dir}.")
        _echo_usage(cluster)
        return
    except (ClusterError, BuildError) as exc:
        typer.echo(f"cluster up failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if dead:
        typer.echo(f"Restarted {', '.join(dead)} on the existing data (state: {cluster.state_dir}).")
    else:
        typer.echo(f"Local control plane ready in {cluster.startup_seconds}s (state: {cluster.state_dir}).")
    if nodes:
        typer.echo(f"Simulated nodes (KWOK): {nodes} x {gpus_per_node} GPU(s), log {cluster.log_path(KWOK)}")
    if FAKES in cluster.processes():
        typer.echo(f"Stand-in Volcano and gateway controllers: log {cluster.log_path(FAKES)}")
    _echo_usage(cluster)


@cluster_app.command()
def down(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    all_under: Annotated[
        Path | None,
        typer.Option(
            "--all-under",
            help="Stop every cluster whose state dir is at or below this directory (e.g. .fusioninfer), "
            "instead of the one of --state-dir.",
        ),
    ] = None,
) -> None:
    """Stop exactly the processes `up` started from this state dir and remove the state (and etcd's data)."""
    if all_under is not None:
        dirs = find_state_dirs(all_under)
        if not dirs:
            typer.echo(f"No cluster state below {all_under}; nothing to stop.")
        for directory in dirs:
            stopped = LocalCluster(directory).down()
            typer.echo(f"{directory}: stopped {', '.join(stopped) if stopped else 'nothing (all already exited)'}")
        return
    cluster = LocalCluster(state_dir)
    if not cluster.processes():
        typer.echo(f"No cluster state in {cluster.state_dir}; nothing to stop.")
        return
    stopped = cluster.down()
    typer.echo(f"Stopped: {', '.join(stopped) if stopped else 'nothing (all already exited)'}; state removed.")


@cluster_app.command()
def status(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Show each component's PID and liveness and whether the apiserver is ready. Exit code 1 when
    the cluster is not (fully) running."""
    st = LocalCluster(state_dir).status()
    if not st.exists:
        typer.echo(f"No cluster in {st.state_dir}.")
        raise typer.Exit(1)
    typer.echo(f"state dir:  {st.state_dir}")
    typer.echo(f"apiserver:  {st.server} ({'ready' if st.ready else 'NOT ready'})")
    typer.echo(f"kubeconfig: {st.kubeconfig}")
    for comp in st.components:
        typer.echo(f"  {comp.name:<24} pid {comp.pid:<8} {'running' if comp.alive else 'NOT running'}")
    if not st.running:
        raise typer.Exit(1)


@cluster_app.command()
def restart(
    component: Annotated[str, typer.Argument(help=f"One of: {', '.join(COMPONENT_ORDER)}.")],
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Restart one component on its recorded flags, ports and data (e.g. after it crashed)."""
    if component not in COMPONENT_ORDER:
        typer.echo(f"unknown component {component!r}; one of: {', '.join(COMPONENT_ORDER)}", err=True)
        raise typer.Exit(2)
    cluster = LocalCluster(state_dir)
    if not cluster.processes():
        typer.echo(f"No cluster state in {cluster.state_dir}; run `fusioninfer cluster up` first.", err=True)
        raise typer.Exit(1)
    try:
        cluster.restart_component(component)
    except ClusterError as exc:
        typer.echo(f"restart failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{component} restarted (log {cluster.log_path(component)}).")


@cluster_app.command()
def build(
    tools: Annotated[
        bool, typer.Option("--tools", help="Build the tools the tests run on what ships instead (Helm).")
    ] = False,
) -> None:
    """Build and cache the control plane, etcd, KWOK, the LWS controller and the endpoint pickers
    (or, with --tools, Helm) from their Go modules (once; see docs/local-control-plane.md for the
    time it takes)."""
    for component in TOOL_COMPONENTS if tools else (*CLUSTER_COMPONENTS, *PICKER_COMPONENTS):
        target = component_dir(component)
        if not missing_binaries(component, target):
            typer.echo(f"{component.name} {component.version}: cached in {target}")
            continue
        try:
            ensure_component(component, echo=typer.echo)
        except BuildError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
    typer.echo(f"Ready: {cache_root()}")


def demo(
    state_dir: Annotated[Path, typer.Option(help="Where the demo cluster keeps its state.")] = Path(
        ".fusioninfer/demo"
    ),
    example: Annotated[
        list[Path] | None, typer.Option("--example", "-f", help="InferenceService file(s) to deploy.")
    ] = None,
    nodes: Annotated[
        int, typer.Option(min=1, help="Simulated GPU nodes, at least (more are added when the examples need them).")
    ] = 4,
    gpus_per_node: Annotated[int, typer.Option(min=0)] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for Ready.")] = 180.0,
    teardown: Annotated[bool, typer.Option(help="Stop everything at the end.")] = False,
) -> None:
    """Local demo: control plane + simulated GPU nodes + operator + examples, until every service is Ready."""
    from fusioninfer_dev.demo import DemoFailed, DemoOptions, run_demo

    options = DemoOptions(state_dir=state_dir, nodes=nodes, gpus_per_node=gpus_per_node, timeout=timeout)
    options.teardown = teardown
    if example:
        options.examples = list(example)
    try:
        run_demo(options)
    except DemoFailed as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None
