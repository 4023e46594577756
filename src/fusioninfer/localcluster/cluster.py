"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler (and optionally the node simulator), started as plain processes.

Why processes and not kind: no container engine and no binary downloads are available on our
machines, but Debian ships the Kubernetes source and etcd (see `build.py`). Everything listens on
127.0.0.1 only, on ports picked free at start-up, so several clusters (several engineers' test
sessions) can run side by side on one machine.

Every process we start is recorded in `<state dir>/state.json` with its full argv and its kernel
start time; `down` signals a PID only when `/proc/<pid>` still shows exactly that process, so a
recycled PID or somebody else's etcd is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from fusioninfer.localcluster.build import bin_dir as default_bin_dir
from fusioninfer.localcluster.build import ensure_binaries, find_etcd

DEFAULT_STATE_DIR = Path(".fusioninfer") / "cluster"
LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
CLUSTER_NAME = "fusioninfer-local"
ADMIN_USER = "admin"
STATE_FILE = "state.json"
TOKENS_FILE = "tokens.csv"
KUBECONFIG_FILE = "kubeconfig"

# Order matters: start in this order, stop in reverse.
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
NODESIM = "nodesim"
FAKES = "fake-controllers"
COMPONENT_ORDER: tuple[str, ...] = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, NODESIM, FAKES)

# Files and directories we create inside the state dir; `down` removes only these, never an
# arbitrary directory a user pointed --state-dir at.
_OWNED_ENTRIES = (STATE_FILE, TOKENS_FILE, KUBECONFIG_FILE, "sa.key", "sa.pub", "certs", "etcd", "logs", "users")


class ClusterError(RuntimeError):
    """The local control plane could not be started, reached or stopped."""


class ClusterAlreadyRunning(ClusterError):
    """`up` was called on a state dir whose cluster is still alive."""


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without starting anything)
# --------------------------------------------------------------------------------------------


def pick_free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return `count` distinct TCP ports that were free on `host` a moment ago.

    All sockets are held open until every port is chosen, so the ports are distinct; the small
    race with other programs after they are closed is handled by `LocalCluster.up` retrying.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def new_token() -> str:
    """A random bearer token (128 bits, hex)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class TokenEntry:
    """One line of kube-apiserver's `--token-auth-file`: a static bearer token for a user."""

    token: str
    user: str
    uid: str
    groups: tuple[str, ...] = ()

    def csv_line(self) -> str:
        """The CSV line: `token,user,uid` plus a quoted, comma-separated group list if any."""
        for value in (self.token, self.user, self.uid, *self.groups):
            if any(c in value for c in ',"\n'):
                raise ValueError(f"token file values may not contain ',', '\"' or newlines: {value!r}")
        line = f"{self.token},{self.user},{self.uid}"
        if self.groups:
            line += ',"' + ",".join(self.groups) + '"'
        return line


def format_tokens_csv(entries: Iterable[TokenEntry]) -> str:
    """Render a whole token file (one `TokenEntry.csv_line` per line)."""
    return "".join(e.csv_line() + "\n" for e in entries)


def parse_tokens_csv(text: str) -> list[TokenEntry]:
    """Parse what `format_tokens_csv` wrote (so users added earlier survive an apiserver restart)."""
    import csv
    import io

    entries: list[TokenEntry] = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        token, user, uid = row[0], row[1], row[2]
        groups = tuple(g for g in row[3].split(",") if g) if len(row) > 3 else ()
        entries.append(TokenEntry(token=token, user=user, uid=uid, groups=groups))
    return entries


def render_kubeconfig(
    server: str,
    token: str,
    *,
    user: str = ADMIN_USER,
    cluster_name: str = CLUSTER_NAME,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig dict for `server` authenticating with a bearer token.

    TLS verification is skipped: the apiserver serves a self-signed certificate it generates in
    its cert dir at start-up, and the server is only reachable on loopback.
    """
    context: dict[str, Any] = {"cluster": cluster_name, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": context}],
        "current-context": cluster_name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path,
    server: str,
    token: str,
    *,
    user: str = ADMIN_USER,
    cluster_name: str = CLUSTER_NAME,
    namespace: str | None = None,
) -> Path:
    """Write `render_kubeconfig(...)` to `path` with mode 0600 (it holds a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = render_kubeconfig(server, token, user=user, cluster_name=cluster_name, namespace=namespace)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return path


def etcd_args(etcd: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    """etcd argv: a single member, client and peer URLs on loopback only."""
    client = f"http://{LOOPBACK}:{client_port}"
    peer = f"http://{LOOPBACK}:{peer_port}"
    return [
        str(etcd),
        "--name=fusioninfer",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=fusioninfer={peer}",
        "--initial-cluster-state=new",
        # Tests write a lot and never need history: keep the database small and compacting.
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=5m",
        "--quota-backend-bytes=4294967296",
    ]


def apiserver_args(
    binary: Path,
    *,
    etcd_port: int,
    secure_port: int,
    cert_dir: Path,
    sa_pub: Path,
    sa_key: Path,
    tokens_file: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    """kube-apiserver argv (the verified recipe in ../shared/reference/local-control-plane.md).

    - RBAC authorization, so tests can prove that a set of RBAC rules is enough;
    - static tokens for the admin and test users, plus ServiceAccount tokens (TokenRequest);
    - the ServiceAccount admission plugin is off: without a token controller and root CA it refuses
      every Pod ("No API token found for service account default"); TaintNodesByCondition too;
    - a /16 service range: a /24 runs out after ~250 Services.
    """
    return [
        str(binary),
        f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={secure_port}",
        "--insecure-port=0",
        f"--cert-dir={cert_dir}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--token-auth-file={tokens_file}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        # TaintNodesByCondition taints every new Node not-ready, and only the node lifecycle
        # controller (which needs real kubelets, so it is off) would ever lift it.
        "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
        "--profiling=false",
        # The `kubernetes` Service cannot point at a loopback address; don't retry that forever.
        "--endpoint-reconciler-type=none",
        *extra,
    ]


def controller_manager_args(binary: Path, kubeconfig: Path, sa_key: Path) -> list[str]:
    """kube-controller-manager argv: all controllers (GC, Deployment, ReplicaSet, StatefulSet, ...)
    except those that need a kubelet or a cloud (node IPAM, node lifecycle) and the token
    controller (no root CA); no serving ports at all."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--service-account-private-key-file={sa_key}",
        "--controllers=*,-nodeipam,-nodelifecycle,-serviceaccount-token",
        f"--bind-address={LOOPBACK}",
        "--secure-port=0",
        "--port=0",
    ]


def scheduler_args(binary: Path, kubeconfig: Path) -> list[str]:
    """kube-scheduler argv: no serving ports, no leader election."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--bind-address={LOOPBACK}",
        "--port=0",
        "--secure-port=0",
    ]


def nodesim_args(kubeconfig: Path, nodes: int, gpus_per_node: int, extra: Sequence[str] = ()) -> list[str]:
    """argv of the background node simulator process that `cluster up --nodes N` starts."""
    return [
        sys.executable,
        "-m",
        "fusioninfer.localcluster.nodesim",
        "--kubeconfig",
        str(kubeconfig),
        "--nodes",
        str(nodes),
        "--gpus-per-node",
        str(gpus_per_node),
        *extra,
    ]


def fakes_args(kubeconfig: Path, extra: Sequence[str] = ()) -> list[str]:
    """argv of the background fake Volcano/LWS/gateway controllers (`fusioninfer.localcluster.fakes`)."""
    return [sys.executable, "-m", "fusioninfer.localcluster.fakes", "--kubeconfig", str(kubeconfig), *extra]


# --------------------------------------------------------------------------------------------
# Process bookkeeping
# --------------------------------------------------------------------------------------------


@dataclass
class ProcessRecord:
    """A process we started: enough to recognise it later with certainty."""

    name: str
    pid: int
    argv: list[str]
    start_time: int | None
    log: str


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = stat[stat.rindex(")") + 2 :].split()
    if rest[0] == "Z":  # a zombie is dead; only its exit status is left to collect
        return None
    return int(rest[19])


def _proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_our_process(record: ProcessRecord) -> bool:
    """True only when `record.pid` is alive and is exactly the process we started: same argv and,
    when recorded, same kernel start time (so a recycled PID never matches)."""
    start = _proc_start_time(record.pid)
    if start is None:
        return False
    if record.start_time is not None and start != record.start_time:
        return False
    return _proc_cmdline(record.pid) == record.argv


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


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------


class LocalCluster:
    """A local control plane whose state (ports, PIDs, keys, kubeconfig, logs) lives in `state_dir`.

    Create one and call `up()`; any later `LocalCluster(same state_dir)` (e.g. another CLI call)
    can inspect it with `status()` and stop it with `down()`. Usable as a context manager.
    """

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        bin_dir: Path | None = None,
        etcd: Path | None = None,
        etcd_parent_dir: Path | None = None,
        ready_timeout: float = 60.0,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        """`state_dir` defaults to `.fusioninfer/cluster` under the cwd. With `etcd_parent_dir`,
        etcd's database goes into a fresh `fusioninfer-etcd-*` directory there instead of the state
        dir (tests use /dev/shm: fsync on tmpfs is free); `down` removes it all the same."""
        self.state_dir = Path(state_dir if state_dir is not None else DEFAULT_STATE_DIR).absolute()
        self._bin_dir = bin_dir
        self._etcd = etcd
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
    def startup_seconds(self) -> float | None:
        """How long the last `up` took (None before the first)."""
        value = self._state.get("startup_seconds")
        return float(value) if value is not None else None

    def log_path(self, component: str) -> Path:
        """Where `component`'s stdout+stderr go."""
        return self.logs_dir / f"{component}.log"

    def processes(self) -> dict[str, ProcessRecord]:
        """The recorded processes by component name."""
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
        """True when every recorded process is alive (does not query the apiserver)."""
        procs = self.processes()
        return bool(procs) and all(is_our_process(p) for p in procs.values())

    def up(
        self,
        *,
        nodes: int = 0,
        gpus_per_node: int = 8,
        nodesim_extra_args: Sequence[str] = (),
        fake_controllers: bool | None = None,
        build: bool = True,
        attempts: int = 3,
    ) -> LocalCluster:
        """Start etcd, kube-apiserver, kube-controller-manager and kube-scheduler and return once
        `/readyz` answers ok. With `nodes > 0` also start the node simulator as a background process
        (in-process simulation for tests: `fusioninfer.localcluster.nodesim.NodeSimulator`), and,
        unless `fake_controllers` is False (default: True exactly when nodes are simulated), the
        fake Volcano / LeaderWorkerSet / gateway controllers (`fusioninfer.localcluster.fakes`):
        simulated nodes without them would leave gang-scheduled Pods Pending for ever.

        Raises ClusterAlreadyRunning if this state dir's cluster is alive. State left by a cluster
        that died is cleaned up first. Retries with new ports if one was grabbed meanwhile.
        """
        if self._state:
            if self.is_running():
                raise ClusterAlreadyRunning(f"a cluster is already running from {self.state_dir}")
            self.down()
        bins = self._resolve_binaries(build)
        etcd = self._etcd or find_etcd()
        if etcd is None:
            raise ClusterError("etcd not found (install Debian's etcd-server or set FUSIONINFER_ETCD)")
        last_error: ClusterError | None = None
        for attempt in range(1, attempts + 1):
            try:
                self._start_all(bins, etcd)
                break
            except ClusterError as exc:
                last_error = exc
                self.down()
                if "address already in use" not in str(exc) or attempt == attempts:
                    raise
        else:  # pragma: no cover - the loop always breaks or raises
            raise last_error or ClusterError("up failed")
        if nodes > 0:
            self.start_nodesim_process(nodes, gpus_per_node, nodesim_extra_args)
        if fake_controllers if fake_controllers is not None else nodes > 0:
            self.start_fakes_process()
        return self

    def _resolve_binaries(self, build: bool) -> Path:
        directory = self._bin_dir or default_bin_dir()
        if build:
            return ensure_binaries(directory)
        return directory

    def _start_all(self, bins: Path, etcd: Path) -> None:
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        etcd_client, etcd_peer, api_port = pick_free_ports(3)
        data_dir = self.state_dir / "etcd"
        if self._etcd_parent_dir is not None:
            data_dir = Path(tempfile.mkdtemp(prefix="fusioninfer-etcd-", dir=self._etcd_parent_dir))
        admin_token = new_token()
        server = f"https://{LOOPBACK}:{api_port}"
        self._state = {
            "version": 1,
            "server": server,
            "admin_token": admin_token,
            "ports": {"etcd_client": etcd_client, "etcd_peer": etcd_peer, "apiserver": api_port},
            "etcd_data_dir": str(data_dir),
            "bin_dir": str(bins),
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

        self._spawn(ETCD, etcd_args(etcd, data_dir, etcd_client, etcd_peer))
        self._wait_http(ETCD, f"http://{LOOPBACK}:{etcd_client}/health", auth=None)
        self._state["argv"][APISERVER] = apiserver_args(
            bins / APISERVER,
            etcd_port=etcd_client,
            secure_port=api_port,
            cert_dir=self.state_dir / "certs",
            sa_pub=self.state_dir / "sa.pub",
            sa_key=self.state_dir / "sa.key",
            tokens_file=self.tokens_path,
            extra=self._extra_apiserver_args,
        )
        self.start_apiserver()
        self._spawn(
            CONTROLLER_MANAGER,
            controller_manager_args(bins / CONTROLLER_MANAGER, self.kubeconfig_path, self.state_dir / "sa.key"),
        )
        self._spawn(SCHEDULER, scheduler_args(bins / SCHEDULER, self.kubeconfig_path))
        self._wait_controller_manager()
        self._state["startup_seconds"] = round(time.monotonic() - started, 2)
        self._save_state()

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
        while proc.poll() is None and _proc_cmdline(proc.pid) != argv and time.monotonic() < deadline:
            time.sleep(0.005)
        record = ProcessRecord(name=name, pid=proc.pid, argv=argv, start_time=_proc_start_time(proc.pid), log=str(log))
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
                self._check_alive(SCHEDULER)
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
        self._require_state()
        rec = self.processes().get(APISERVER)
        if rec is not None and is_our_process(rec):
            raise ClusterError("kube-apiserver is already running")
        self._spawn(APISERVER, list(self._state["argv"][APISERVER]))
        self.wait_ready()

    def stop_apiserver(self, timeout: float = 1.0) -> None:
        """Stop only kube-apiserver (SIGTERM, then SIGKILL after `timeout`: with watches open a
        1.20 apiserver can take 15 s to drain, and a hard stop is a realistic outage anyway); etcd,
        the controllers and any node simulator keep running, as in a real control-plane outage."""
        rec = self.processes().get(APISERVER)
        if rec is not None:
            self._terminate(rec, timeout)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port; returns when it is ready again."""
        self.stop_apiserver()
        self.start_apiserver()

    def start_nodesim_process(
        self, nodes: int, gpus_per_node: int = 8, extra_args: Sequence[str] = ()
    ) -> ProcessRecord:
        """Run the node simulator as a background process that `down` stops (what `cluster up
        --nodes N` does; tests usually run `NodeSimulator` in-process instead)."""
        return self.start_process(NODESIM, nodesim_args(self.kubeconfig_path, nodes, gpus_per_node, extra_args))

    def start_fakes_process(self, extra_args: Sequence[str] = ()) -> ProcessRecord:
        """Run the fake third-party controllers as a background process that `down` stops."""
        return self.start_process(FAKES, fakes_args(self.kubeconfig_path, extra_args))

    def start_process(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check_alive_for: float = 0.3,
    ) -> ProcessRecord:
        """Start an extra background process that belongs to this cluster (the demo's operator,
        the node simulator): logged to `logs/<name>.log`, recorded in the state, stopped by `down`
        before the control plane. Raises ClusterError if it exits within `check_alive_for` s."""
        self._require_state()
        if name in (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER):
            raise ValueError(f"{name} is a control-plane component; use up/start_apiserver")
        rec = self.processes().get(name)
        if rec is not None and is_our_process(rec):
            raise ClusterError(f"process {name!r} is already running for this cluster (pid {rec.pid})")
        full_env = dict(os.environ if env is None else env)
        # A Python child must import this very package even when started from another cwd.
        src = str(Path(__file__).resolve().parents[2])
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, full_env.get("PYTHONPATH", "")) if p)
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
        """Extra processes (newest first), then the node simulator, then the control plane in
        reverse start order."""
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

        kube-apiserver 1.20 reads the token file only at start, so this restarts the apiserver
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
