"""Reaching a local cluster that runs (or ran) from a state dir: its paths, ports and recorded
processes, its users and ServiceAccount kubeconfigs, and lightkube clients. `LocalCluster`
(cluster.py) adds the lifecycle on top; this part never starts or stops anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster.components import TokenEntry, write_kubeconfig
from fusioninfer_dev.localcluster.processes import ProcessRecord
from fusioninfer_dev.localcluster.state import DEFAULT_STATE_DIR, ClusterState
from fusioninfer_dev.localcluster.users import read_users, request_service_account_token, safe_file_name


class ClusterAccess:
    """What anyone holding the state dir of a cluster can read and do without running it."""

    def __init__(self, state_dir: Path | str | None = None) -> None:
        self.state_dir = Path(state_dir if state_dir is not None else DEFAULT_STATE_DIR).absolute()
        self._state = ClusterState(self.state_dir)

    # ----- paths and properties ------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        """The admin kubeconfig (bearer token, TLS verification skipped)."""
        return self._state.kubeconfig_path

    @property
    def tokens_path(self) -> Path:
        return self._state.tokens_path

    @property
    def logs_dir(self) -> Path:
        return self._state.logs_dir

    @property
    def server(self) -> str:
        """`https://127.0.0.1:<port>` of the apiserver."""
        return self._state.server

    @property
    def admin_token(self) -> str:
        return self._state.admin_token

    @property
    def ports(self) -> dict[str, int]:
        return self._state.ports

    @property
    def etcd_data_dir(self) -> Path:
        """Where etcd keeps this cluster's data."""
        return self._state.etcd_data_dir

    @property
    def pod_block(self) -> str | None:
        """The loopback /16 this cluster's pod (and Gateway) addresses come from (kwok.py)."""
        value = self._state.data.get("pod_block")
        return str(value) if value else None

    @property
    def startup_seconds(self) -> float | None:
        """How long the last `up` took (None before the first)."""
        value = self._state.data.get("startup_seconds")
        return float(value) if value is not None else None

    @property
    def metrics_write_port(self) -> int:
        """Where the custom metrics adapter takes values (`metrics_api.write_url`)."""
        return int(self.ports["metrics_write"])

    def log_path(self, component: str) -> Path:
        """Where `component`'s stdout+stderr go."""
        return self._state.log_path(component)

    def processes(self) -> dict[str, ProcessRecord]:
        """The recorded processes by component name, as the state file says now (another
        `LocalCluster` on the same state dir, e.g. a CLI call, may have restarted some)."""
        return self._state.processes()

    # ----- users and clients -------------------------------------------------------------------

    def users(self) -> list[TokenEntry]:
        """The static-token users the apiserver knows (admin first)."""
        return read_users(self.tokens_path)

    def user_kubeconfig(self, entry: TokenEntry, path: Path | None = None, namespace: str | None = None) -> Path:
        """Write a kubeconfig that authenticates as `entry` (default: `<state>/users/<user>.kubeconfig`)."""
        target = path or self.state_dir / "users" / f"{safe_file_name(entry.user)}.kubeconfig"
        return write_kubeconfig(target, self.server, entry.token, user=entry.user, namespace=namespace)

    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A token for ServiceAccount `namespace/name` via the TokenRequest API (the SA must exist).
        The apiserver authenticates it as `system:serviceaccount:<ns>:<name>`, no restart needed."""
        with self.client() as client:
            return request_service_account_token(client, namespace, name, expiration_seconds)

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
