"""The local cluster's own controllers: a Volcano stand-in, the local gateway and the pod runner.

The local cluster runs a real apiserver, controller-manager, scheduler, KWOK and the real
LeaderWorkerSet controller. What does not run from upstream is played here, through the same
API objects, subresources, names, labels and status shapes:

- `volcano.FakeVolcano` (STAND-IN: Volcano's Go module is not served by the Go module proxy
  this machine reaches, so it cannot be built): gang scheduler for `schedulerName: volcano`
  Pods + PodGroup status;
- `gateway.LocalGateway`: a Gateway API + Inference Extension implementation for the classes
  whose `controllerName` is `fusioninfer.io/local-gateway`, with the upstream Envoy as data plane
  when the cluster has a pod address block;
- `podrunner.PodRunner`: the processes behind serving pods (the real GIE picker, the stand-in
  model server), at the pods' IPs;
- `metrics_feeder.MetricsFeeder` (with the pod runner and the cluster's metrics adapter): the
  model servers' gauges scraped and written to the custom metrics API, as Prometheus and
  prometheus-adapter would, so the controller manager's HPA controller can scale on them.

`FakeControllers` runs them together: in-process (`start()`/`stop()` in a thread, or
`await run()`), or as the process `python -m fusioninfer_dev.localcluster.fakes --kubeconfig K`,
which `fusioninfer cluster up --nodes N` starts by default (`--no-fake-controllers` to leave
them out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster.kube_loop import client_for
from fusioninfer_dev.localcluster.podrunner import PodRunner, Timing

log = logging.getLogger("fusioninfer.fakes")

ALL_FAKES = ("volcano", "gateway", "pods")
FIELD_MANAGER = "fusioninfer-fakes"


class FakeControllers:
    """The fakes named in `enabled`, sharing one client, watching `namespace` (None: all)."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        namespace: str | None = None,
        enabled: Sequence[str] = ALL_FAKES,
        pod_block: str | None = None,
        workdir: Path | None = None,
        gie_picker: Path | None = None,
        timing: Timing | None = None,
        metrics_write_port: int | None = None,
    ) -> None:
        unknown = set(enabled) - set(ALL_FAKES)
        if unknown:
            raise ValueError(f"unknown fake controllers {sorted(unknown)}; choose from {ALL_FAKES}")
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.enabled = tuple(e for e in enabled if e != "pods" or pod_block)
        self.pod_block = pod_block
        self.workdir = workdir
        self.gie_picker = gie_picker
        self.timing = timing or Timing()
        self.metrics_write_port = metrics_write_port
        self.controllers: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    async def run(self) -> None:
        """Run every enabled fake until `request_stop()` (or cancellation)."""
        from fusioninfer_dev.localcluster.fakes.volcano import FakeVolcano
        from fusioninfer_dev.localcluster.gateway.body_router import BodyRouter
        from fusioninfer_dev.localcluster.gateway.controller import LocalGateway
        from fusioninfer_dev.localcluster.gateway.envoy import Envoy
        from fusioninfer_dev.localcluster.metrics_feeder import MetricsFeeder

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        client = client_for(self.kubeconfig, FIELD_MANAGER)
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="fusioninfer-pods-"))
        runner = None
        if "pods" in self.enabled and self.pod_block:
            env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
            runner = PodRunner(
                client, self.kubeconfig, workdir, self.pod_block, self.gie_picker, env,
                namespace=self.namespace, timing=self.timing,
            )  # fmt: skip
            self.controllers["pods"] = runner
            if self.metrics_write_port is not None:
                self.controllers["metrics"] = MetricsFeeder(lambda: runner.model_servers, self.metrics_write_port)
        if "volcano" in self.enabled:
            self.controllers["volcano"] = FakeVolcano(client, namespace=self.namespace)
        if "gateway" in self.enabled:
            envoy = Envoy(workdir / "envoy") if self.pod_block else None
            bbr = self.gie_picker.with_name("bbr") if self.gie_picker is not None else None
            body_router = (
                BodyRouter(bbr, self.kubeconfig, workdir / "bbr") if bbr is not None and bbr.exists() else None
            )
            self.controllers["gateway"] = LocalGateway(
                client, namespace=self.namespace, pod_block=self.pod_block, envoy=envoy, runner=runner,
                body_router=body_router, resync=2.0 if envoy else 10.0,
            )  # fmt: skip
        tasks = [asyncio.create_task(c.run(), name=f"fake-{n}") for n, c in self.controllers.items()]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            for controller in self.controllers.values():
                controller.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            self._loop = None

    def request_stop(self) -> None:
        """Ask `run()` to finish (thread-safe)."""
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def start(self, timeout: float = 10.0) -> FakeControllers:
        """Run in a daemon thread with its own event loop (tests)."""
        if self._thread is not None:
            raise RuntimeError("fake controllers already started")
        self._thread = threading.Thread(target=self._thread_main, name="fake-controllers", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError("fake controllers failed to start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run())
        except BaseException as exc:
            self._error = exc
            log.exception("fake controllers crashed")
        finally:
            self._started.set()

    def __enter__(self) -> FakeControllers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m fusioninfer_dev.localcluster.fakes --kubeconfig K [--only volcano,gateway] [--namespace N]`."""
    parser = argparse.ArgumentParser(
        prog="python -m fusioninfer_dev.localcluster.fakes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--namespace", default=None, help="act only in this namespace (default: all)")
    parser.add_argument("--only", default=",".join(ALL_FAKES), help=f"comma-separated subset of {ALL_FAKES}")
    parser.add_argument("--pod-block", default=None, help="the cluster's loopback pod address block")
    parser.add_argument("--workdir", default=None, type=Path, help="where pod processes keep files and logs")
    parser.add_argument("--gie-picker", default=None, type=Path, help="the GIE endpoint picker binary")
    parser.add_argument(
        "--metrics-write-port", default=None, type=int, help="the custom metrics adapter's write port (feeds it)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    fakes = FakeControllers(
        args.kubeconfig,
        namespace=args.namespace,
        enabled=[s for s in args.only.split(",") if s],
        pod_block=args.pod_block,
        workdir=args.workdir,
        gie_picker=args.gie_picker,
        metrics_write_port=args.metrics_write_port,
    )

    async def _main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, fakes.request_stop)
        log.info("fake controllers running: %s", ", ".join(fakes.enabled))
        await fakes.run()

    asyncio.run(_main())


__all__ = ["ALL_FAKES", "FakeControllers", "main"]
