"""`fusioninfer cluster up|down|status|build`: the local control plane from the command line.

`up` leaves the processes running in the background (detached from the terminal) and returns once
the apiserver is ready; `down` stops exactly those processes, identified by the state dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusioninfer.localcluster.build import BuildError, bin_dir, ensure_binaries, missing_binaries
from fusioninfer.localcluster.cluster import (
    DEFAULT_STATE_DIR,
    FAKES,
    NODESIM,
    ClusterAlreadyRunning,
    ClusterError,
    LocalCluster,
)

cluster_app = typer.Typer(
    help="A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler "
    "v1.20.2) plus simulated GPU nodes, on 127.0.0.1.",
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
            help="Run fake Volcano, LeaderWorkerSet and gateway controllers (default: on with --nodes).",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Start the control plane (building the binaries first if needed) and wait until it is ready."""
    cluster = LocalCluster(state_dir)
    try:
        cluster.up(nodes=nodes, gpus_per_node=gpus_per_node, fake_controllers=fake_controllers)
    except ClusterAlreadyRunning:
        typer.echo(f"A cluster is already running from {cluster.state_dir}.")
        _echo_usage(cluster)
        return
    except (ClusterError, BuildError) as exc:
        typer.echo(f"cluster up failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Local control plane ready in {cluster.startup_seconds}s (state: {cluster.state_dir}).")
    if nodes:
        typer.echo(f"Node simulator: {nodes} node(s) x {gpus_per_node} GPU(s), log {cluster.log_path(NODESIM)}")
    if FAKES in cluster.processes():
        typer.echo(f"Fake Volcano/LWS/gateway controllers: log {cluster.log_path(FAKES)}")
    _echo_usage(cluster)


@cluster_app.command()
def down(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Stop exactly the processes `up` started from this state dir and remove the state."""
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
def build() -> None:
    """Build and cache kube-apiserver, kube-controller-manager and kube-scheduler (once, ~10 min)."""
    target = bin_dir()
    if not missing_binaries(target):
        typer.echo(f"Binaries already cached in {target}.")
    try:
        ensure_binaries(target, echo=typer.echo)
    except BuildError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Ready: {target}")
