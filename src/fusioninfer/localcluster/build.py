"""Find or build the Kubernetes v1.20.2 control-plane binaries the local cluster runs.

No binary downloads are possible on our machines, so `build-k8s.sh` builds kube-apiserver,
kube-controller-manager and kube-scheduler from Debian's own source package (about 7 minutes
on 2 cores) and caches them. Everything else here only *finds* what is already there, so that
a cluster start costs seconds once the cache is warm.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

K8S_VERSION = "v1.20.2"
BINARIES: tuple[str, ...] = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
BUILD_SCRIPT = Path(__file__).with_name("build-k8s.sh")
# Debian's etcd-server package installs here; build-k8s.sh installs it when missing.
DEFAULT_ETCD = Path("/usr/bin/etcd")


class BuildError(RuntimeError):
    """The binaries are missing and could not be built."""


def cache_root() -> Path:
    """The cache root: `$FUSIONINFER_CACHE_DIR` or `~/.cache/fusioninfer`.

    CI caches this one directory between runs; the binaries live in a version-keyed child so that
    a version bump never picks up stale binaries.
    """
    env = os.environ.get("FUSIONINFER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fusioninfer"


def bin_dir(root: Path | None = None) -> Path:
    """Directory holding the three cached binaries (`<cache root>/k8s-v1.20.2`)."""
    return (root if root is not None else cache_root()) / f"k8s-{K8S_VERSION}"


def missing_binaries(directory: Path) -> list[str]:
    """Names of the control-plane binaries not (executable) in `directory`."""
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def find_etcd() -> Path | None:
    """The etcd binary: `$FUSIONINFER_ETCD`, then `etcd` on PATH, then Debian's location."""
    env = os.environ.get("FUSIONINFER_ETCD")
    if env:
        return Path(env) if os.access(env, os.X_OK) else None
    found = shutil.which("etcd")
    if found:
        return Path(found)
    return DEFAULT_ETCD if os.access(DEFAULT_ETCD, os.X_OK) else None


def binaries_ready(directory: Path | None = None) -> bool:
    """True when nothing needs building: all three binaries are cached and etcd is installed."""
    return not missing_binaries(directory or bin_dir()) and find_etcd() is not None


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """Serialise builds: two test sessions starting on a cold machine must not build twice at once."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.parent / f".{directory.name}.build.lock"
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_binaries(
    directory: Path | None = None,
    *,
    echo: Callable[[str], None] | None = None,
) -> Path:
    """Return the directory with kube-apiserver, kube-controller-manager and kube-scheduler.

    When they (or etcd) are missing, runs `build-k8s.sh` and streams its output line by line to
    `echo` (default: stderr) so a ~10 minute cold build shows progress instead of looking hung.
    Raises BuildError when the build fails.
    """
    target = directory or bin_dir()
    if binaries_ready(target):
        return target
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    with _build_lock(target):
        if binaries_ready(target):  # another process built them while we waited for the lock
            return target
        say(
            f"[fusioninfer] Kubernetes {K8S_VERSION} binaries missing in {target} "
            f"(or no etcd); building from Debian source, this takes ~10 minutes once."
        )
        proc = subprocess.Popen(
            ["bash", str(BUILD_SCRIPT), str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-39:], line]
            say(line)
        rc = proc.wait()
        if rc != 0:
            raise BuildError(f"build-k8s.sh failed with exit code {rc}; last lines:\n" + "\n".join(tail))
    still_missing = missing_binaries(target)
    if still_missing or find_etcd() is None:
        raise BuildError(f"build finished but still missing: {still_missing or ['etcd']}")
    return target
