"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (simulated nodes), started as plain processes.

Why processes and not kind: no container engine and no binary downloads are available on our
machines, but every component builds from its Go module (see `build.py`). Everything listens on
127.0.0.1 only, on ports picked free at start-up, so several clusters (several engineers' test
sessions) can run side by side on one machine.

Every process we start is recorded in `<state dir>/state.json` (see `processes.py`). A cluster
whose processes died comes back with `up` on the same ports and the same etcd data: nothing here
deletes data except `down`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fusioninfer_dev.localcluster import lws, metrics_api
from fusioninfer_dev.localcluster.build import GIE_EPP, ensure_cluster_binaries, ensure_component
from fusioninfer_dev.localcluster.components import (
    ADMIN_USER,
    LOOPBACK,
    TokenEntry,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    format_tokens_csv,
    new_token,
    parse_tokens_csv,
    pick_free_ports,
    scheduler_args,
    write_kubeconfig,
)
from fusioninfer_dev.localcluster.crds import BUNDLED_CRD_DIR, install_crds
from fusioninfer_dev.localcluster.kwok import NodeSpec, create_nodes, kwok_args, node_names
from fusioninfer_dev.localcluster.processes import (
    ProcessRecord,
    is_our_process,
    proc_cmdline,
    proc_start_time,
    source_roots,
)

DEFAULT_STATE_DIR = Path(".fusioninfer") / "cluster"
STATE_FILE = "state.json"
TOKENS_FILE = "tokens.csv"
KUBECONFIG_FILE = "kubeconfig"
DEFAULT_NODE_POOL = "sim-node"

# Order matters: start in this order, stop in reverse.
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KWOK = "kwok"
LWS = "lws-controller"
METRICS_ADAPTER = "custom-metrics-adapter"
FAKES = "fake-controllers"
CONTROL_PLANE: tuple[str, ...] = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK, LWS, METRICS_ADAPTER)
STATE_VERSION = 3
LWS_CRD_DIR = BUNDLED_CRD_DIR / "lws-v0.7.0"
COMPONENT_ORDER: tuple[str, ...] = (*CONTROL_PLANE, FAKES)

# Files and directories we create inside the state dir; `down` removes only these, never an
# arbitrary directory a user pointed --state-dir at.
_OWNED_ENTRIES = (
    STATE_FILE,
    TOKENS_FILE,
    KUBECONFIG_FILE,
    "sa.key",
    "sa.pub",
    "certs",
    "etcd",
    "logs",
    "users",
    "lws-certs",
    "lws-config.yaml",
    "metrics-certs",
)


class ClusterError(RuntimeError):
    """The local control plane could not be started, reached or stopped."""


class ClusterAlreadyRunning(ClusterError):
    """`up` was called on a state dir whose cluster is still alive."""


def fakes_args(kubeconfig: Path, extra: Sequence[str] = ()) -> list[str]:
    """argv of the background stand-in Volcano and gateway controllers (`fusioninfer_dev.localcluster.fakes`)."""
    return [sys.executable, "-m", "fusioninfer_dev.localcluster.fakes", "--kubeconfig", str(kubeconfig), *extra]


@dataclass
class ComponentStatus:
    """One component's state as `status` reports it."""

    name: str
    pid: int
    alive: bool


@dataclass
class ClusterStatus:
    """What `fusioninfer cluster status` prints."""

    state_dir: Path
    exists: bool
    server: str | None = None
    kubeconfig: Path | None = None
    ready: bool = False
    components: list[ComponentStatus] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """All recorded components alive and the apiserver answering /readyz."""
        return self.exists and self.ready and all(c.alive for c in self.components)


class LocalCluster:
    """A local control plane whose state (ports, PIDs, keys, kubeconfig, logs) lives in `state_dir`.

    Create one and call `up()`; any later `LocalCluster(same state_dir)` (e.g. another CLI call)
    can inspect it with `status()` and stop it with `down()`. Usable as a context manager.
    """

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        binaries: Mapping[str, Path] | None = None,
        etcd_parent_dir: Path | None = None,
        ready_timeout: float = 60.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        """`state_dir` defaults to `.fusioninfer/cluster` under the cwd. With `etcd_parent_dir`,
        etcd's database goes into a fresh `fusioninfer-etcd-*` directory there instead of the state
        dir (tests use /dev/shm: fsync on tmpfs is free); `down` removes it all the same."""
        self.state_dir = Path(state_dir if state_dir is not None else DEFAULT_STATE_DIR).absolute()
        self._binaries = dict(binaries) if binaries is not None else None
        self._etcd_parent_dir = etcd_parent_dir
        self.ready_timeout = ready_timeout
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._state: dict[str, Any] = self._load_state()

    # ----- paths and properties ------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        """The admin kubeconfig (bearer token, TLS verification skipped)."""
        return self.state_dir / KUBECONFIG_FILE

    @property
    def tokens_path(self) -> Path:
        return self.state_dir / TOKENS_FILE

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def server(self) -> str:
        """`https://127.0.0.1:<port>` of the apiserver."""
        self._require_state()
        return str(self._state["server"])

    @property
    def admin_token(self) -> str:
        self._require_state()
        return str(self._state["admin_token"])

    @property
    def ports(self) -> dict[str, int]:
        self._require_state()
        return dict(self._state["ports"])

    @property
    def pod_block(self) -> str | None:
        """The loopback /16 this cluster's pod (and Gateway) addresses come from (kwok.py)."""
        value = self._state.get("pod_block")
        return str(value) if value else None

    @property
    def startup_seconds(self) -> float | None:
        """How long the last `up` took (None before the first)."""
        value = self._state.get("startup_seconds")
        return float(value) if value is not None else None

    def log_path(self, component: str) -> Path:
        """Where `component`'s stdout+stderr go."""
        return self.logs_dir / f"{component}.log"

    def processes(self) -> dict[str, ProcessRecord]:
        """The recorded processes by component name, as the state file says now (another
        `LocalCluster` on the same state dir, e.g. a CLI call, may have restarted some)."""
        on_disk = self._load_state()
        if on_disk:
            self._state = on_disk
        return {name: ProcessRecord(**rec) for name, rec in self._state.get("processes", {}).items()}

    # ----- state file ------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text()))

    def _save_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self._state, indent=2, sort_keys=True))
        tmp.replace(self.state_dir / STATE_FILE)

    def _require_state(self) -> None:
        if not self._state:
            raise ClusterError(f"no cluster state in {self.state_dir}; run `fusioninfer cluster up` first")

    # ----- lifecycle ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True when every recorded cluster component is alive (does not query the apiserver);
        attached processes such as an operator do not count."""
        procs = self.processes()
        return bool(procs) and not self.dead_components()

    def up(
        self,
        *,
        nodes: int = 0,
        gpus_per_node: int = 8,
        fake_controllers: bool | None = None,
        attempts: int = 3,
    ) -> LocalCluster:
        """Start etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK and return
        once `/readyz` answers ok, building the binaries first when they are not cached. With
        `nodes > 0` register that many simulated GPU nodes and, unless `fake_controllers` is False
        (default: True exactly when nodes are simulated), start the fake Volcano / LeaderWorkerSet
        / gateway controllers (`fusioninfer_dev.localcluster.fakes`).

        On a state dir whose cluster is alive: ClusterAlreadyRunning. On one whose processes (some
        or all) died: `recover()`, which restarts them on the same ports and the same etcd data.
        Retries with new ports if one was grabbed between picking and binding it.
        """
        if self._state:
            if self.is_running():
                raise ClusterAlreadyRunning(f"a cluster is already running from {self.state_dir}")
            self.recover()
        else:
            bins = self._resolve_binaries()
            for attempt in range(1, attempts + 1):
                try:
                    self._start_all(bins)
                    break
                except ClusterError as exc:
                    self.down()
                    if "address already in use" not in str(exc) or attempt == attempts:
                        raise
        if nodes > 0:
            self.add_nodes(nodes, NodeSpec(gpus=gpus_per_node))
        if FAKES not in self.processes() and (fake_controllers if fake_controllers is not None else nodes > 0):
            self.start_fakes_process()
        return self

    def _resolve_binaries(self) -> dict[str, Path]:
        if self._binaries is None:
            self._binaries = ensure_cluster_binaries()
        return self._binaries

    def _start_all(self, bins: Mapping[str, Path]) -> None:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        etcd_client, etcd_peer, api_port, scheduler_port, kwok_port, *more_ports = pick_free_ports(10)
        lws_ports, metrics_ports = more_ports[:3], more_ports[3:]
        data_dir = self.state_dir / "etcd"
        if self._etcd_parent_dir is not None:
            data_dir = Path(tempfile.mkdtemp(prefix="fusioninfer-etcd-", dir=self._etcd_parent_dir))
        admin_token = new_token()
        server = f"https://{LOOPBACK}:{api_port}"
        self._state = {
            "version": STATE_VERSION,
            "server": server,
            "admin_token": admin_token,
            "ports": {
                "etcd_client": etcd_client,
                "etcd_peer": etcd_peer,
                "apiserver": api_port,
                "scheduler": scheduler_port,
                "kwok": kwok_port,
                "lws_webhook": lws_ports[0],
                "lws_metrics": lws_ports[1],
                "lws_health": lws_ports[2],
                "metrics_api": metrics_ports[0],
                "metrics_write": metrics_ports[1],
            },
            "etcd_data_dir": str(data_dir),
            "pod_block": pick_pod_block(),
            "processes": {},
            "argv": {},
        }
        self._save_state()
        _generate_sa_keypair(self.state_dir / "sa.key", self.state_dir / "sa.pub")
        self.tokens_path.write_text(
            format_tokens_csv([TokenEntry(admin_token, ADMIN_USER, ADMIN_USER, ("system:masters",))])
        )
        os.chmod(self.tokens_path, 0o600)
        write_kubeconfig(self.kubeconfig_path, server, admin_token)
        kubeconfig, sa_key = self.kubeconfig_path, self.state_dir / "sa.key"
        metrics_certs = self.state_dir / "metrics-certs"
        metrics_api.generate_certificates(metrics_certs)
        self._state["argv"] = {
            ETCD: etcd_args(bins["etcd"], data_dir, etcd_client, etcd_peer),
            APISERVER: apiserver_args(
                bins[APISERVER],
                etcd_port=etcd_client,
                secure_port=api_port,
                cert_dir=self.state_dir / "certs",
                sa_pub=self.state_dir / "sa.pub",
                sa_key=sa_key,
                tokens_file=self.tokens_path,
                extra=(*metrics_api.apiserver_aggregation_args(metrics_certs), *self._extra_apiserver_args),
            ),
            CONTROLLER_MANAGER: controller_manager_args(bins[CONTROLLER_MANAGER], kubeconfig, sa_key),
            SCHEDULER: scheduler_args(bins[SCHEDULER], kubeconfig, scheduler_port),
            KWOK: kwok_args(bins["kwok"], kubeconfig, server_port=kwok_port),
            LWS: lws.controller_args(bins["lws-controller"], kubeconfig, self.state_dir / "lws-config.yaml"),
            METRICS_ADAPTER: metrics_api.adapter_args(
                bins[METRICS_ADAPTER],
                kubeconfig,
                metrics_certs,
                secure_port=metrics_ports[0],
                write_port=metrics_ports[1],
            ),
        }
        self._save_state()
        for name in CONTROL_PLANE:
            if name == LWS:
                self._prepare_lws()
            elif name == METRICS_ADAPTER:
                self._register_metrics_api()
            self.start_component(name)
        self._state["startup_seconds"] = round(time.monotonic() - started, 2)
        self._save_state()

    def start_component(self, name: str) -> ProcessRecord:
        """Start one control-plane component with its recorded flags and wait until it serves."""
        self._require_state()
        if name not in CONTROL_PLANE:
            raise ValueError(f"{name!r} is not a control-plane component (one of {', '.join(CONTROL_PLANE)})")
        rec = self.processes().get(name)
        if rec is not None and is_our_process(rec):
            raise ClusterError(f"{name} is already running (pid {rec.pid})")
        record = self._spawn(name, list(self._state["argv"][name]))
        if name == ETCD:
            self._wait_http(ETCD, f"http://{LOOPBACK}:{self.ports['etcd_client']}/health", auth=None)
        elif name == APISERVER:
            self.wait_ready()
        elif name == CONTROLLER_MANAGER:
            self._wait_controller_manager()
        elif name == SCHEDULER:
            self._wait_http(SCHEDULER, f"https://{LOOPBACK}:{self.ports['scheduler']}/healthz", auth=None)
        elif name == KWOK:
            self._wait_http(KWOK, f"http://{LOOPBACK}:{self.ports['kwok']}/healthz", auth=None)
        elif name == LWS:
            self._wait_http(LWS, f"http://{LOOPBACK}:{self.ports['lws_health']}/readyz", auth=None)
            self._wait_webhooks_served()
        elif name == METRICS_ADAPTER:
            self._wait_http(METRICS_ADAPTER, f"https://{LOOPBACK}:{self.ports['metrics_api']}/readyz", auth=None)
        return record

    def _prepare_lws(self) -> None:
        """What the LWS controller needs before it starts: its CRD (it exits without one), its
        configuration, a CA and serving certificate, and webhook configurations that send the
        apiserver to it."""
        ports = self.ports
        cert_dir = self.state_dir / "lws-certs"
        lws.generate_certificates(cert_dir)
        config = lws.controller_config(
            webhook_port=ports["lws_webhook"],
            cert_dir=cert_dir,
            metrics_port=ports["lws_metrics"],
            health_port=ports["lws_health"],
        )
        (self.state_dir / "lws-config.yaml").write_text(json.dumps(config, indent=2))
        ca_bundle = base64.b64encode((cert_dir / "ca.crt").read_bytes()).decode()
        from lightkube.generic_resource import create_global_resource
        from lightkube.types import PatchType

        with self.client(field_manager="fusioninfer-localcluster") as client:
            install_crds(client, LWS_CRD_DIR)
            for config_obj in lws.webhook_configurations(ports["lws_webhook"], ca_bundle):
                kind = config_obj["kind"]
                res = create_global_resource("admissionregistration.k8s.io", "v1", kind, kind.lower() + "s")
                client.patch(
                    res,
                    config_obj["metadata"]["name"],
                    config_obj,
                    patch_type=PatchType.APPLY,
                    field_manager="fusioninfer-localcluster",
                    force=True,
                )

    def _register_metrics_api(self) -> None:
        """Point the custom and external metrics APIs at the adapter (metrics_api.py says why an
        ExternalName Service). The HPA controller finds them through discovery once the adapter
        serves; until then the APIServices report Available=False and the HPA retries."""
        ca_bundle = base64.b64encode((self.state_dir / "metrics-certs" / "ca.crt").read_bytes()).decode()
        from lightkube.resources.apiregistration_v1 import APIService
        from lightkube.resources.core_v1 import Service
        from lightkube.types import PatchType

        with self.client(field_manager="fusioninfer-localcluster") as client:
            for obj in metrics_api.api_objects(self.ports["metrics_api"], ca_bundle):
                namespace = obj["metadata"].get("namespace")
                client.patch(
                    Service if obj["kind"] == "Service" else APIService,
                    obj["metadata"]["name"],
                    obj,
                    namespace=namespace,
                    patch_type=PatchType.APPLY,
                    field_manager="fusioninfer-localcluster",
                    force=True,
                )

    @property
    def metrics_write_port(self) -> int:
        """Where the custom metrics adapter takes values (`metrics_api.write_url`)."""
        return int(self.ports["metrics_write"])

    def _wait_webhooks_served(self) -> None:
        """The controller reports ready before its webhooks are registered (they are set up in
        a goroutine after the certificates): wait until a webhook path answers something other
        than 404, or every LWS write would be refused meanwhile (failurePolicy Fail)."""
        url = f"https://{LOOPBACK}:{self.ports['lws_webhook']}/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset"
        deadline = time.monotonic() + self.ready_timeout
        with httpx.Client(verify=False, timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                self._check_alive(LWS)
                try:
                    if http.post(url, json={}).status_code != 404:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise ClusterError(f"{LWS} webhooks not served within {self.ready_timeout}s; log:\n{self._log_tail(LWS)}")

    def dead_components(self) -> list[str]:
        """Recorded cluster components (control plane and fakes) that are no longer running."""
        procs = self.processes()
        return [n for n in COMPONENT_ORDER if n in procs and not is_our_process(procs[n])]

    def recover(self) -> list[str]:
        """Restart every dead component of this state dir on its recorded ports and data, in start
        order; returns their names. Processes attached with `start_process` (e.g. an operator) are
        not restarted: they are not part of the cluster.

        Refuses (ClusterError, saying how to start over) when etcd's data directory is gone, since
        a restart would silently come up empty.
        """
        self._require_state()
        if self._state.get("version") != STATE_VERSION:
            raise ClusterError(
                f"the state in {self.state_dir} was written by an older FusionInfer (another Kubernetes "
                f"version); start over with `fusioninfer cluster down --state-dir {self.state_dir}` (this deletes "
                "its data)"
            )
        data_dir = Path(self._state["etcd_data_dir"])
        if not (data_dir / "member").is_dir():
            raise ClusterError(
                f"etcd's data directory {data_dir} is gone (tmpfs after a reboot?), so the cluster cannot come back "
                f"with its data. Start over with `fusioninfer cluster down --state-dir {self.state_dir}` then `up`."
            )
        self._resolve_binaries()  # a cleaned cache is rebuilt before anything is restarted
        dead = self.dead_components()
        for name in dead:
            if name == FAKES:
                self.start_fakes_process(restart=True)
            else:
                self.start_component(name)
        return dead

    def restart_component(self, name: str) -> None:
        """Stop (if running) and start one component on its recorded flags: `cluster restart`."""
        if name == FAKES:
            self.stop_process(FAKES)
            self.start_fakes_process(restart=True)
            return
        rec = self.processes().get(name)
        if rec is not None:
            self._terminate(rec, 3.0 if name == APISERVER else 10.0)
        self.start_component(name)

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ProcessRecord:
        """Start `argv` detached from our session (it outlives the CLI that ran `up`), log to the
        state dir, and record it before doing anything else so `down` can always find it."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path(name)
        with log.open("ab") as fh:
            fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                close_fds=True,
                env=dict(env) if env is not None else None,
            )
        self._children[proc.pid] = proc
        # Popen returns once exec has begun, but the kernel fills /proc/<pid>/cmdline a moment
        # later; wait for it so every later identity check sees the real argv.
        deadline = time.monotonic() + 2.0
        while proc.poll() is None and proc_cmdline(proc.pid) != argv and time.monotonic() < deadline:
            time.sleep(0.005)
        record = ProcessRecord(name=name, pid=proc.pid, argv=argv, start_time=proc_start_time(proc.pid), log=str(log))
        self._state.setdefault("processes", {})[name] = asdict(record)
        self._save_state()
        return record

    def _log_tail(self, name: str, lines: int = 25) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self, name: str) -> None:
        rec = self.processes().get(name)
        proc = self._children.get(rec.pid) if rec else None
        if rec is None:
            raise ClusterError(f"{name} was never started")
        code = proc.poll() if proc is not None else None
        # An unreaped child of ours cannot have had its PID recycled: poll() is the whole truth.
        alive = code is None if proc is not None else is_our_process(rec)
        if not alive:
            how = f"exit code {code}" if code is not None else f"pid {rec.pid} gone"
            raise ClusterError(
                f"{name} exited during start-up ({how}); log {self.log_path(name)}:\n{self._log_tail(name)}"
            )

    def _wait_http(self, name: str, url: str, auth: str | None) -> None:
        """Poll `url` until it answers 200 `ok`, failing fast if the process dies."""
        deadline = time.monotonic() + self.ready_timeout
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        last = "no answer"
        with httpx.Client(verify=False, timeout=2.0, trust_env=False) as http:
            while time.monotonic() < deadline:
                self._check_alive(name)
                try:
                    resp = http.get(url, headers=headers)
                    if resp.status_code == 200:
                        return
                    last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        raise ClusterError(f"{name} not ready after {self.ready_timeout}s ({last}); log:\n{self._log_tail(name)}")

    def _wait_controller_manager(self) -> None:
        """Wait until kube-controller-manager has built its controller context and started its
        controllers, visible as the `default` ServiceAccount it creates in namespace `default`.

        Returning earlier is a trap: the controller manager exits for good ("unable to get any
        supported resources from server") if the apiserver goes away while it is still starting,
        which is exactly what an apiserver-restart test does right after `up()`.
        """
        from lightkube import ApiError
        from lightkube.resources.core_v1 import ServiceAccount

        deadline = time.monotonic() + self.ready_timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                self._check_alive(CONTROLLER_MANAGER)
                try:
                    client.get(ServiceAccount, "default", namespace="default")
                    return
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise
                time.sleep(0.1)
        raise ClusterError(
            f"kube-controller-manager did not start its controllers within {self.ready_timeout}s; log:\n"
            + self._log_tail(CONTROLLER_MANAGER)
        )

    def wait_ready(self) -> None:
        """Block until the apiserver's `/readyz` answers ok."""
        self._wait_http(APISERVER, f"{self.server}/readyz", auth=self.admin_token)

    def start_apiserver(self) -> None:
        """(Re)start only kube-apiserver with its recorded flags and wait for `/readyz`.
        Tokens added with `add_user` are read at this point."""
        self.start_component(APISERVER)

    def stop_apiserver(self, timeout: float = 1.0) -> None:
        """Stop only kube-apiserver (SIGTERM, then SIGKILL after `timeout`: a hard stop is a
        realistic outage anyway); etcd, the controllers and KWOK keep running, as in a real
        control-plane outage."""
        rec = self.processes().get(APISERVER)
        if rec is not None:
            self._terminate(rec, timeout)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port; returns when it is ready again."""
        self.stop_apiserver()
        self.start_apiserver()

    def add_nodes(self, count: int, spec: NodeSpec | None = None, *, pool: str = DEFAULT_NODE_POOL) -> list[str]:
        """Register `count` simulated nodes `<pool>-0..` (existing ones are kept) for KWOK to run;
        returns their names."""
        names = node_names(pool, count)
        with self.client() as client:
            return create_nodes(client, names, spec or NodeSpec(), pool=pool, pod_block=self.pod_block)

    def start_fakes_process(self, extra_args: Sequence[str] = (), *, restart: bool = False) -> ProcessRecord:
        """Run the fake third-party controllers as a background process that `down` stops."""
        rec = self.processes().get(FAKES)
        if rec is not None and restart:
            argv = list(rec.argv)
        else:
            block = ["--pod-block", self.pod_block] if self.pod_block else []
            picker = ["--gie-picker", str(ensure_component(GIE_EPP) / "epp")] if self.pod_block else []
            workdir = ["--workdir", str(self.state_dir / "pods")]
            feeder = ["--metrics-write-port", str(self.metrics_write_port)] if self.pod_block else []
            argv = fakes_args(self.kubeconfig_path, [*block, *picker, *workdir, *feeder, *extra_args])
        return self.start_process(FAKES, argv)

    def start_process(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check_alive_for: float = 0.3,
    ) -> ProcessRecord:
        """Start an extra background process that belongs to this cluster (the demo's operator,
        the fake controllers): logged to `logs/<name>.log`, recorded in the state, stopped by `down`
        before the control plane. Raises ClusterError if it exits within `check_alive_for` s."""
        self._require_state()
        if name in CONTROL_PLANE:
            raise ValueError(f"{name} is a control-plane component; use up/start_component")
        rec = self.processes().get(name)
        if rec is not None and is_our_process(rec):
            raise ClusterError(f"process {name!r} is already running for this cluster (pid {rec.pid})")
        full_env = dict(os.environ if env is None else env)
        # A Python child must import these very packages (the operator's and this harness's,
        # from this checkout or worktree) even when started from another cwd.
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (*source_roots(), full_env.get("PYTHONPATH", "")) if p)
        record = self._spawn(name, list(argv), full_env)
        deadline = time.monotonic() + check_alive_for
        while time.monotonic() < deadline:
            self._check_alive(name)
            time.sleep(0.05)
        self._check_alive(name)
        return record

    def stop_process(self, name: str, timeout: float = 10.0) -> bool:
        """Stop one recorded process (if it is still ours). True if it was running."""
        rec = self.processes().get(name)
        return rec is not None and self._terminate(rec, timeout)

    def _stop_order(self) -> list[str]:
        """Attached processes (newest first), then the fakes, then the control plane in reverse
        start order."""
        names = list(self.processes())
        extras = [n for n in names if n not in COMPONENT_ORDER]
        return [*reversed(extras), *(n for n in reversed(COMPONENT_ORDER) if n in names)]

    def _terminate(self, rec: ProcessRecord, timeout: float) -> bool:
        """Stop `rec` if and only if it is still exactly our process. Returns True if signalled."""
        proc = self._children.pop(rec.pid, None)
        # An unreaped child of ours is ours beyond doubt (its PID cannot have been recycled), even
        # in the instant after exec when /proc/<pid>/cmdline is still empty; anything else must
        # prove its identity through /proc.
        if proc is not None:
            if proc.poll() is not None:
                return False  # already exited (and now reaped)
        elif not is_our_process(rec):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return True
            elif not is_our_process(rec):
                return True
            time.sleep(0.05)
        if (proc is not None and proc.poll() is None) or (proc is None and is_our_process(rec)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        else:  # not our child (another LocalCluster started it): wait until /proc says it is gone
            gone_by = time.monotonic() + 5.0
            while is_our_process(rec) and time.monotonic() < gone_by:
                time.sleep(0.02)
        return True

    def down(self, *, remove_state: bool = True, timeout: float = 10.0) -> list[str]:
        """Stop exactly the processes this state dir records (verified by argv and start time),
        newest component first, then remove the state (only the files we created) and etcd's data.
        Returns the names of the components that were stopped. Safe to call twice."""
        stopped: list[str] = []
        procs = self.processes()
        for name in self._stop_order():
            grace = min(timeout, 3.0) if name == APISERVER else timeout
            if self._terminate(procs[name], grace):
                stopped.append(name)
        if remove_state:
            data_dir = self._state.get("etcd_data_dir")
            if data_dir and Path(data_dir).name.startswith("fusioninfer-etcd-"):
                shutil.rmtree(data_dir, ignore_errors=True)
            for entry in _OWNED_ENTRIES:
                path = self.state_dir / entry
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.state_dir.rmdir()  # only if empty: never delete what we did not create
                if self.state_dir.parent.name == DEFAULT_STATE_DIR.parent.name:
                    self.state_dir.parent.rmdir()  # the default's `.fusioninfer`, again only if empty
            self._state = {}
        return stopped

    def status(self) -> ClusterStatus:
        """Liveness of each recorded process and whether `/readyz` answers."""
        self._state = self._load_state()
        if not self._state:
            return ClusterStatus(state_dir=self.state_dir, exists=False)
        comps = [
            ComponentStatus(name=name, pid=rec.pid, alive=is_our_process(rec))
            for name, rec in reversed([(n, self.processes()[n]) for n in self._stop_order()])
        ]
        ready = False
        try:
            with httpx.Client(verify=False, timeout=2.0, trust_env=False) as http:
                resp = http.get(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"})
                ready = resp.status_code == 200
        except httpx.HTTPError:
            ready = False
        return ClusterStatus(
            state_dir=self.state_dir,
            exists=True,
            server=self.server,
            kubeconfig=self.kubeconfig_path,
            ready=ready,
            components=comps,
        )

    # ----- users and clients -------------------------------------------------------------------

    def users(self) -> list[TokenEntry]:
        """The static-token users the apiserver knows (admin first)."""
        return parse_tokens_csv(self.tokens_path.read_text())

    def add_user(
        self,
        user: str,
        groups: Sequence[str] = (),
        *,
        token: str | None = None,
        restart: bool = True,
    ) -> TokenEntry:
        """Add a static bearer token for `user` in `groups` (e.g. to prove an RBAC role suffices).

        kube-apiserver reads the token file only at start, so this restarts the apiserver
        (~2 s) unless `restart=False` (then batch several users and call `restart_apiserver()`).
        For ServiceAccounts prefer `service_account_kubeconfig`, which needs no restart.
        """
        self._require_state()
        entry = TokenEntry(token=token or new_token(), user=user, uid=user, groups=tuple(groups))
        entries = [e for e in self.users() if e.user != user] + [entry]
        self.tokens_path.write_text(format_tokens_csv(entries))
        if restart:
            self.restart_apiserver()
        return entry

    def user_kubeconfig(self, entry: TokenEntry, path: Path | None = None, namespace: str | None = None) -> Path:
        """Write a kubeconfig that authenticates as `entry` (default: `<state>/users/<user>.kubeconfig`)."""
        target = path or self.state_dir / "users" / f"{_safe_name(entry.user)}.kubeconfig"
        return write_kubeconfig(target, self.server, entry.token, user=entry.user, namespace=namespace)

    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for ServiceAccount `namespace/name` via the TokenRequest API (the SA must exist).
        The apiserver authenticates it as `system:serviceaccount:<ns>:<name>`, no restart needed."""
        from lightkube.models.authentication_v1 import TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccountToken

        with self.client() as client:
            req = ServiceAccountToken(
                metadata=ObjectMeta(),  # lightkube needs one; empty audiences = the apiserver's own
                spec=TokenRequestSpec(audiences=[], expirationSeconds=expiration_seconds),
            )
            res = client.create(req, name, namespace=namespace)
        if res.status is None:
            raise ClusterError("TokenRequest returned no status")
        return str(res.status.token)

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path | None = None) -> Path:
        """A kubeconfig acting as ServiceAccount `namespace/name` (e.g. the operator's own SA)."""
        token = self.service_account_token(namespace, name)
        target = path or self.state_dir / "users" / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(
            target, self.server, token, user=f"system:serviceaccount:{namespace}:{name}", namespace=namespace
        )

    def client(self, **kwargs: Any) -> Any:
        """A sync `lightkube.Client` on the admin kubeconfig (kwargs go to `Client`)."""
        from lightkube import Client, KubeConfig

        return Client(config=KubeConfig.from_file(self.kubeconfig_path), **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        """An async `lightkube.AsyncClient` on the admin kubeconfig (kwargs go to `AsyncClient`)."""
        from lightkube import AsyncClient, KubeConfig

        return AsyncClient(config=KubeConfig.from_file(self.kubeconfig_path), **kwargs)

    def __enter__(self) -> LocalCluster:
        if not self.is_running():
            self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def pick_pod_block() -> str:
    """A loopback /16 for one cluster's pods, at random so that clusters side by side differ."""
    return f"127.{secrets.randbelow(190) + 64}.0.0/16"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _generate_sa_keypair(key: Path, pub: Path) -> None:
    """RSA keypair the apiserver signs/verifies ServiceAccount tokens with (openssl CLI: no
    Python crypto dependency just for this)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ClusterError("openssl not found; install Debian's openssl package")
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    subprocess.run([openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)


def find_state_dirs(root: Path) -> list[Path]:
    """Every cluster state dir at or below `root` (what `cluster down --all` stops): the default
    one, the demo's, and any other a user pointed `--state-dir` at inside it."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(STATE_FILE) if p.is_file())
