"""A local cluster's state directory: `state.json` (ports, tokens, each component's argv, the
processes started) and the files beside it.

The state file is the only memory a cluster has: another `LocalCluster` on the same directory
(a later CLI call, another test process) reads it to find, check and stop exactly the processes
this one started. It is written atomically (write, then rename) after every change.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fusioninfer_dev.localcluster.processes import ProcessRecord

DEFAULT_STATE_DIR = Path(".fusioninfer") / "cluster"
STATE_FILE = "state.json"
TOKENS_FILE = "tokens.csv"
KUBECONFIG_FILE = "kubeconfig"
# Bumped whenever what a state file records changes meaning (e.g. another Kubernetes version):
# an older state is refused with the command to start over instead of half-working.
STATE_VERSION = 3

# Files and directories we create inside the state dir; `remove_files` removes only these, never
# an arbitrary directory a user pointed --state-dir at.
OWNED_ENTRIES = (
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
# A fresh etcd directory outside the state dir (tests put it on /dev/shm) starts with this.
ETCD_TEMP_PREFIX = "fusioninfer-etcd-"


class ClusterError(RuntimeError):
    """The local control plane could not be started, reached or stopped."""


class ClusterAlreadyRunning(ClusterError):
    """`up` was called on a state dir whose cluster is still alive."""


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


class ClusterState:
    """The state directory of one cluster and the contents of its `state.json` (`data`)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.data: dict[str, Any] = self.load()

    # ----- paths -------------------------------------------------------------------------------

    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / KUBECONFIG_FILE

    @property
    def tokens_path(self) -> Path:
        return self.dir / TOKENS_FILE

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    # ----- the file ----------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        path = self.dir / STATE_FILE
        if not path.exists():
            return {}
        return dict(json.loads(path.read_text()))

    def reload(self) -> None:
        """Take what is on disk now (another `LocalCluster` may have restarted something);
        keep what we have when the file is gone."""
        on_disk = self.load()
        if on_disk:
            self.data = on_disk

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        tmp.replace(self.dir / STATE_FILE)

    def require(self) -> None:
        if not self.data:
            raise ClusterError(f"no cluster state in {self.dir}; run `fusioninfer cluster up` first")

    def require_current_version(self) -> None:
        if self.data.get("version") != STATE_VERSION:
            raise ClusterError(
                f"the state in {self.dir} was written by an older FusionInfer (another Kubernetes "
                f"version); start over with `fusioninfer cluster down --state-dir {self.dir}` (this deletes "
                "its data)"
            )

    # ----- what it records ---------------------------------------------------------------------

    @property
    def server(self) -> str:
        self.require()
        return str(self.data["server"])

    @property
    def admin_token(self) -> str:
        self.require()
        return str(self.data["admin_token"])

    @property
    def ports(self) -> dict[str, int]:
        self.require()
        return dict(self.data["ports"])

    @property
    def etcd_data_dir(self) -> Path:
        self.require()
        return Path(self.data["etcd_data_dir"])

    def argv(self, component: str) -> list[str]:
        return list(self.data["argv"][component])

    def processes(self) -> dict[str, ProcessRecord]:
        """The recorded processes by component name, as the state file says now."""
        self.reload()
        return {name: ProcessRecord(**rec) for name, rec in self.data.get("processes", {}).items()}

    def record_process(self, record: ProcessRecord) -> None:
        self.data.setdefault("processes", {})[record.name] = asdict(record)
        self.save()

    def remove_files(self) -> None:
        """Remove etcd's data and the files we created, then the state dir (and the default's
        `.fusioninfer`) only if that leaves them empty."""
        data_dir = self.data.get("etcd_data_dir")
        if data_dir and Path(data_dir).name.startswith(ETCD_TEMP_PREFIX):
            shutil.rmtree(data_dir, ignore_errors=True)
        for entry in OWNED_ENTRIES:
            path = self.dir / entry
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only if empty: never delete what we did not create
            if self.dir.parent.name == DEFAULT_STATE_DIR.parent.name:
                self.dir.parent.rmdir()
        self.data = {}


def find_state_dirs(root: Path) -> list[Path]:
    """Every cluster state dir at or below `root` (what `cluster down --all` stops): the default
    one, the demo's, and any other a user pointed `--state-dir` at inside it."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(STATE_FILE) if p.is_file())
