"""The Inference Extension's body-based router (`cmd/bbr` v1.2.1, built from its Go module).

One process per local gateway: Envoy's first ext_proc filter sends it each request, and it puts
the JSON body's `model` into the `X-Gateway-Model-Name` header and clears Envoy's route cache,
so the HTTPRoute matching that header (each service's route matches its own model names)
routes the request. `--streaming` because Envoy streams the body full-duplex; free ports,
since it shares this machine's network namespace.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fusioninfer_dev.localcluster.components import pick_free_ports
from fusioninfer_dev.localcluster.gateway.envoy import listening
from fusioninfer_dev.localcluster.gateway.envoy_config import PickerTarget
from fusioninfer_dev.localcluster.processes import die_with_parent, stop_child


class BodyRouter:
    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.grpc_port = 0

    def ensure_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.grpc_port, health, metrics = pick_free_ports(3)
        argv = [
            str(self.binary),
            f"--grpc-port={self.grpc_port}",
            f"--grpc-health-port={health}",
            f"--metrics-port={metrics}",
            "--streaming",
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with (self.workdir / "bbr.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=die_with_parent,
            )  # fmt: skip

    def target(self) -> PickerTarget | None:
        """Where Envoy reaches it, once it serves (None before: routes then match without it)."""
        if self.proc is None or self.proc.poll() is not None or not listening("127.0.0.1", self.grpc_port):
            return None
        return PickerTarget("127.0.0.1", self.grpc_port, tls=True)

    def stop(self) -> None:
        stop_child(self.proc)
