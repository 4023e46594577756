"""`fusioninfer run`: the operator process (client set-up, signals, graceful shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from lightkube import AsyncClient, KubeConfig

from fusioninfer.controller.operator import Operator, OperatorConfig, ProcessConfig, run_process
from fusioninfer.runtime.client import async_client
from fusioninfer.runtime.leader import LeadershipLost

log = logging.getLogger(__name__)


def parse_bind(value: str) -> tuple[str, int] | None:
    """':8080' -> ('0.0.0.0', 8080); '127.0.0.1:0' -> ('127.0.0.1', 0); '0' or '' -> disabled."""
    if value in ("", "0"):
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"invalid bind address {value!r}: expected [HOST]:PORT")
    return host or "0.0.0.0", int(port)


def load_kubeconfig(path: str | None) -> KubeConfig:
    """--kubeconfig, else $KUBECONFIG, else the in-cluster service account, else ~/.kube/config."""
    if path:
        return KubeConfig.from_file(Path(path).expanduser())
    return KubeConfig.from_env()


def make_client(path: str | None) -> AsyncClient:
    # Requests are counted in the process's metrics (rest_client_requests_total).
    return async_client(load_kubeconfig(path), field_manager="fusioninfer")


@dataclass
class RunOptions:
    kubeconfig: str | None
    operator: OperatorConfig
    process: ProcessConfig


async def _main(options: RunOptions) -> None:
    client = make_client(options.kubeconfig)
    watches = make_client(options.kubeconfig)  # see `Operator`: writes keep a small pool of their own
    operator = Operator(client, options.operator, watch_client=watches)
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await run_process(client, operator, options.process)
    except asyncio.CancelledError:
        log.info("shutting down")
    except LeadershipLost as exc:
        # Another replica may already be reconciling: stopping is the only safe move, and a
        # non-zero exit makes the kubelet restart us as a follower.
        log.error("%s; exiting so that this replica restarts as a follower", exc)
        raise SystemExit(1) from None
    finally:
        await client.close()
        await watches.close()


def run(options: RunOptions) -> None:
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(_main(options))


def default_lease_namespace() -> str:
    env = os.environ.get("POD_NAMESPACE")
    if env:
        return env
    sa_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return sa_ns.read_text().strip() if sa_ns.exists() else "default"
