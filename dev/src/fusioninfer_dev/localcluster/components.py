"""The local cluster's configuration, as pure functions: ports, static tokens, kubeconfigs and
each component's command line (unit-tested without starting anything).

Flags are those of the versions `build.py` builds (Kubernetes v1.33, etcd v3.5, KWOK v0.7); the
traps behind them are written down in docs/local-control-plane.md.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
CLUSTER_NAME = "fusioninfer-local"
ADMIN_USER = "admin"

# The processes of one cluster, by the names its state and logs use, in start order.
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KWOK = "kwok"
LWS = "lws-controller"
METRICS_ADAPTER = "custom-metrics-adapter"
FAKES = "fake-controllers"
CONTROL_PLANE: tuple[str, ...] = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER, KWOK, LWS, METRICS_ADAPTER)
COMPONENT_ORDER: tuple[str, ...] = (*CONTROL_PLANE, FAKES)


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
    """etcd argv: a single member, client and peer URLs on loopback only.

    `--initial-cluster-state=new` only matters for an empty data dir: restarted on its existing
    data, etcd keeps what it has.
    """
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
    """kube-apiserver argv.

    - RBAC authorization, so tests can prove that a set of RBAC rules is enough;
    - static tokens for the admin and test users, plus ServiceAccount tokens (TokenRequest);
    - the ServiceAccount admission plugin is off: it refuses every Pod of a namespace until the
      controller manager has created that namespace's `default` ServiceAccount, a race every
      test that creates a namespace and then a Pod would lose now and then; no kubelet would
      mount the token it injects anyway. TaintNodesByCondition is off too (see below);
    - a /16 service range: a /24 runs out after ~250 Services.
    """
    return [
        str(binary),
        f"--etcd-servers=http://{LOOPBACK}:{etcd_port}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={secure_port}",
        f"--cert-dir={cert_dir}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={sa_pub}",
        f"--service-account-signing-key-file={sa_key}",
        f"--token-auth-file={tokens_file}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        # TaintNodesByCondition taints every new Node not-ready until the node lifecycle
        # controller (off: it would evict pods of nodes without real kubelets) lifts it.
        "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
        "--profiling=false",
        # The `kubernetes` Service cannot point at a loopback address; don't retry that forever.
        "--endpoint-reconciler-type=none",
        *extra,
    ]


def controller_manager_args(binary: Path, kubeconfig: Path, sa_key: Path) -> list[str]:
    """kube-controller-manager argv: all controllers (GC, Deployment, ReplicaSet, StatefulSet,
    HPA, ...) except those that need a kubelet or a cloud (node IPAM, node lifecycle) and the
    legacy token controller; no serving port."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--service-account-private-key-file={sa_key}",
        "--controllers=*,-node-ipam-controller,-node-lifecycle-controller,-serviceaccount-token-controller",
        f"--bind-address={LOOPBACK}",
        "--secure-port=0",
    ]


def scheduler_args(binary: Path, kubeconfig: Path, secure_port: int) -> list[str]:
    """kube-scheduler argv: no leader election; its health port on loopback (1.33 cannot turn it
    off: `--secure-port=0` is refused)."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={secure_port}",
    ]


def fakes_args(kubeconfig: Path, extra: Sequence[str] = ()) -> list[str]:
    """argv of the background stand-in controllers (`fusioninfer_dev.localcluster.fakes`)."""
    return [sys.executable, "-m", "fusioninfer_dev.localcluster.fakes", "--kubeconfig", str(kubeconfig), *extra]
