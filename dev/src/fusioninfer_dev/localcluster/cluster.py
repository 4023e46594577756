"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (simulated nodes), started as plain processes.

Why processes and not kind: no container engine and no binary downloads are available on our
machines, but every component builds from its Go module (see `build.py`). Everything listens on
127.0.0.1 only, on ports picked free at start-up, so several clusters (several engineers' test
sessions) can run side by side on one machine.

Every process we start is recorded in `<state dir>/state.json` (`state.py`; started and stopped
by `launcher.py`). A cluster whose processes died comes back with `up` on the same ports and the
same etcd data: nothing here deletes data except `down`. What a new cluster is made of (ports,
keys, each component's argv) is `bootstrap.py`; users and ServiceAccount tokens are `users.py`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from fusioninfer_dev.localcluster import bootstrap
from fusioninfer_dev.localcluster.access import ClusterAccess
from fusioninfer_dev.localcluster.build import GIE_EPP, ensure_cluster_binaries, ensure_component
from fusioninfer_dev.localcluster.components import (
    APISERVER,
    COMPONENT_ORDER,
    CONTROL_PLANE,
    CONTROLLER_MANAGER,
    ETCD,
    FAKES,
    KWOK,
    LOOPBACK,
    LWS,
    METRICS_ADAPTER,
    SCHEDULER,
    TokenEntry,
    fakes_args,
)
from fusioninfer_dev.localcluster.kwok import NodeSpec, create_nodes, node_names
from fusioninfer_dev.localcluster.launcher import ProcessLauncher
from fusioninfer_dev.localcluster.processes import ProcessRecord, is_our_process, source_roots
from fusioninfer_dev.localcluster.state import (
    ClusterAlreadyRunning,
    ClusterError,
    ClusterStatus,
    ComponentStatus,
)
from fusioninfer_dev.localcluster.users import put_user

DEFAULT_NODE_POOL = "sim-node"


class LocalCluster(ClusterAccess):
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
        super().__init__(state_dir)
        self._binaries = dict(binaries) if binaries is not None else None
        self._etcd_parent_dir = etcd_parent_dir
        self.ready_timeout = ready_timeout
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._launcher = ProcessLauncher(self._state)

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
        """Start etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK, LWS and the
        custom metrics adapter and return once each serves, building the binaries first when they
        are not cached. With `nodes > 0` register that many simulated GPU nodes and, unless
        `fake_controllers` is False (default: True exactly when nodes are simulated), start the
        remaining stand-ins and the pod runner (`fusioninfer_dev.localcluster.fakes`).

        On a state dir whose cluster is alive: ClusterAlreadyRunning. On one whose processes (some
        or all) died: `recover()`, which restarts them on the same ports and the same etcd data.
        Retries with new ports if one was grabbed between picking and binding it.
        """
        if self._state.data:
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
        bootstrap.new_cluster(
            self._state, bins, etcd_parent_dir=self._etcd_parent_dir, extra_apiserver_args=self._extra_apiserver_args
        )
        for name in CONTROL_PLANE:
            if name == LWS:
                with self.client(field_manager=bootstrap.FIELD_MANAGER) as client:
                    bootstrap.prepare_lws(self._state, client)
            elif name == METRICS_ADAPTER:
                with self.client(field_manager=bootstrap.FIELD_MANAGER) as client:
                    bootstrap.register_metrics_api(self._state, client)
            self.start_component(name)
        self._state.data["startup_seconds"] = round(time.monotonic() - started, 2)
        self._state.save()

    def start_component(self, name: str) -> ProcessRecord:
        """Start one control-plane component with its recorded flags and wait until it serves."""
        self._state.require()
        if name not in CONTROL_PLANE:
            raise ValueError(f"{name!r} is not a control-plane component (one of {', '.join(CONTROL_PLANE)})")
        rec = self.processes().get(name)
        if rec is not None and is_our_process(rec):
            raise ClusterError(f"{name} is already running (pid {rec.pid})")
        record = self._launcher.spawn(name, self._state.argv(name))
        ports, wait_http, timeout = self.ports, self._launcher.wait_http, self.ready_timeout
        if name == ETCD:
            wait_http(ETCD, f"http://{LOOPBACK}:{ports['etcd_client']}/health", timeout)
        elif name == APISERVER:
            self.wait_ready()
        elif name == CONTROLLER_MANAGER:
            with self.client() as client:
                bootstrap.wait_controller_manager(client, self._launcher, timeout)
        elif name == SCHEDULER:
            wait_http(SCHEDULER, f"https://{LOOPBACK}:{ports['scheduler']}/healthz", timeout)
        elif name == KWOK:
            wait_http(KWOK, f"http://{LOOPBACK}:{ports['kwok']}/healthz", timeout)
        elif name == LWS:
            wait_http(LWS, f"http://{LOOPBACK}:{ports['lws_health']}/readyz", timeout)
            bootstrap.wait_lws_webhooks(self._state, self._launcher, timeout)
        elif name == METRICS_ADAPTER:
            wait_http(METRICS_ADAPTER, f"https://{LOOPBACK}:{ports['metrics_api']}/readyz", timeout)
        return record

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
        self._state.require()
        self._state.require_current_version()
        data_dir = self._state.etcd_data_dir
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
            self._launcher.terminate(rec, 3.0 if name == APISERVER else 10.0)
        self.start_component(name)

    def wait_ready(self) -> None:
        """Block until the apiserver's `/readyz` answers ok."""
        self._launcher.wait_http(APISERVER, f"{self.server}/readyz", self.ready_timeout, auth=self.admin_token)

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
            self._launcher.terminate(rec, timeout)

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
        """Run the stand-in controllers and the pod runner as a background process that `down` stops."""
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
        self._state.require()
        if name in CONTROL_PLANE:
            raise ValueError(f"{name} is a control-plane component; use up/start_component")
        rec = self.processes().get(name)
        if rec is not None and is_our_process(rec):
            raise ClusterError(f"process {name!r} is already running for this cluster (pid {rec.pid})")
        full_env = dict(os.environ if env is None else env)
        # A Python child must import these very packages (the operator's and this harness's,
        # from this checkout or worktree) even when started from another cwd.
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (*source_roots(), full_env.get("PYTHONPATH", "")) if p)
        record = self._launcher.spawn(name, list(argv), full_env)
        deadline = time.monotonic() + check_alive_for
        while time.monotonic() < deadline:
            self._launcher.check_alive(name)
            time.sleep(0.05)
        self._launcher.check_alive(name)
        return record

    def stop_process(self, name: str, timeout: float = 10.0) -> bool:
        """Stop one recorded process (if it is still ours). True if it was running."""
        rec = self.processes().get(name)
        return rec is not None and self._launcher.terminate(rec, timeout)

    def _stop_order(self) -> list[str]:
        """Attached processes (newest first), then the fakes, then the control plane in reverse
        start order."""
        names = list(self.processes())
        extras = [n for n in names if n not in COMPONENT_ORDER]
        return [*reversed(extras), *(n for n in reversed(COMPONENT_ORDER) if n in names)]

    def down(self, *, remove_state: bool = True, timeout: float = 10.0) -> list[str]:
        """Stop exactly the processes this state dir records (verified by argv and start time),
        newest component first, then remove the state (only the files we created) and etcd's data.
        Returns the names of the components that were stopped. Safe to call twice."""
        stopped: list[str] = []
        procs = self.processes()
        for name in self._stop_order():
            grace = min(timeout, 3.0) if name == APISERVER else timeout
            if self._launcher.terminate(procs[name], grace):
                stopped.append(name)
        if remove_state:
            self._state.remove_files()
        return stopped

    def status(self) -> ClusterStatus:
        """Liveness of each recorded process and whether `/readyz` answers."""
        self._state.data = self._state.load()
        if not self._state.data:
            return ClusterStatus(state_dir=self.state_dir, exists=False)
        procs = self.processes()
        comps = [
            ComponentStatus(name=name, pid=procs[name].pid, alive=is_our_process(procs[name]))
            for name in reversed(self._stop_order())
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

    # ----- users ------------------------------------------------------------------------------

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
        self._state.require()
        entry = put_user(self.tokens_path, user, groups, token)
        if restart:
            self.restart_apiserver()
        return entry

    def __enter__(self) -> LocalCluster:
        if not self.is_running():
            self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
