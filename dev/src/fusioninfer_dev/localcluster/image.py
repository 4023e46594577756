"""The operator image on this machine: Podman with the flags it needs here, and a stand-in base image.

Development tooling only (the operator proper never imports this).

Podman runs here as root in a sandbox that differs from a workstation in three ways, each
handled by `Podman.detect()` and mirrored in the Makefile's `docker-build` (which prints the
command it runs):

- the sandbox refuses `setrlimit` beyond the current hard limits, and Podman (as root) raises the
  open-files limit of every container by default: `CONTAINERS_CONF` then points at a file with
  ``default_ulimits = []`` (only when raising that limit is refused, so a workstation keeps its
  own containers.conf);
- no systemd: ``--cgroup-manager cgroupfs``;
- runc rather than crun (Debian's `podman` would pull crun, which refuses this machine's cgroup
  layout; `make image-tools` installs runc): ``--runtime runc`` whenever runc is installed.

No container registry is reachable, so the Dockerfile's base (`ARG PYTHON_IMAGE`, the official
``python:3.11.11-slim-bookworm``) cannot be pulled. `ensure_base_image()` stands in for it under
the same name: a Debian bookworm `debootstrap --variant=minbase` root with Debian's Python 3.11,
python3-venv, python3-pip and python-is-python3 (what the Dockerfile relies on: `python`, `pip`
and `python -m venv` on PATH), from the Debian mirror apt uses here, trusting the certificate
authorities this machine trusts (its package proxy's among them, so `pip` in the build reaches
PyPI). The root is packed once into `<cache root>/base-image/`, so later runs only `podman import`
it (seconds). docs/image.md says what differs from the official image.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fusioninfer_dev.localcluster import progress
from fusioninfer_dev.localcluster.build import _build_lock, cache_root
from fusioninfer_dev.localcluster.progress import Echo

REPO_ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = REPO_ROOT / "Dockerfile"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
# What `podman import` cannot take from a root file system: the official image's environment.
IMAGE_CHANGES = (
    "ENV=PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV=LANG=C.UTF-8",
    'CMD=["python3"]',
)
# Bumped when the recipe changes in a way the key below does not see.
RECIPE_VERSION = "1"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
CONTAINERS_CONF = (
    "[containers]\n"
    "# The sandbox refuses raising rlimits; Podman as root raises RLIMIT_NOFILE by default.\n"
    "default_ulimits = []\n"
)
PROGRESS_INTERVAL = 15.0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ImageError(Exception):
    """A step of building or running the image failed; the message has the tool's last lines."""


def dockerfile_base(dockerfile: Path = DOCKERFILE) -> str:
    """The fully qualified name of the Dockerfile's `ARG PYTHON_IMAGE` default, as Podman stores
    it (`python:3.11` is `docker.io/library/python:3.11`)."""
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile.read_text(), re.MULTILINE)
    if match is None:
        raise ImageError(f"no `ARG PYTHON_IMAGE=` in {dockerfile}")
    return qualified(match.group(1))


def qualified(name: str) -> str:
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def setrlimit_refused() -> bool:
    """Would Podman's default raise of the open-files limit (to 1048576, as root) be refused?"""
    probe = subprocess.run(["sh", "-c", "ulimit -Hn 1048576"], capture_output=True, check=False)
    return probe.returncode != 0


@dataclass
class Podman:
    """`podman` with the global flags and environment this machine needs (module docstring)."""

    binary: str
    flags: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def detect(cls, binary: str | None = None, conf_dir: Path | None = None) -> Podman | None:
        """None when Podman is not installed."""
        found = binary or shutil.which("podman")
        if found is None:
            return None
        flags: list[str] = []
        if not Path("/run/systemd/system").is_dir():
            flags += ["--cgroup-manager", "cgroupfs"]
        if shutil.which("runc"):
            flags += ["--runtime", "runc"]
        env: dict[str, str] = {}
        if "CONTAINERS_CONF" not in os.environ and setrlimit_refused():
            conf = (conf_dir or cache_root() / "podman") / "containers.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
                conf.write_text(CONTAINERS_CONF)
            env["CONTAINERS_CONF"] = str(conf)
        return cls(found, flags, env)

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *self.flags, *args]

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def run(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), env=self.environ(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ImageError(f"podman {' '.join(args[:2])} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0

    def image_size(self, name: str) -> int:
        """Bytes, as `podman images` counts them (all layers, uncompressed)."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


def run_with_progress(argv: Sequence[str], *, what: str, say: Echo, env: dict[str, str] | None = None) -> None:
    """Run a long step with a progress line (its latest output) every 15 s (`progress.py`)."""
    progress.run_with_progress(argv, what=what, say=say, env=env, interval=PROGRESS_INTERVAL, error=ImageError)


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt uses here (deb822 `.sources` or one-line `sources.list`)."""
    files = [*sorted((sources_dir / "sources.list.d").glob("*.sources")), sources_dir / "sources.list"]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1)
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", " ", line).split()  # `deb [options] URI SUITE COMPONENTS`
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1]
    return "http://deb.debian.org/debian"


def local_cas() -> list[Path]:
    """The certificate authorities this machine adds to Debian's (its package proxy's among them)."""
    return sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []


def base_key(mirror: str, cas: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"{RECIPE_VERSION} {SUITE} {' '.join(PACKAGES)} {mirror}".encode())
    for ca in cas:
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:16]


def base_tarball(mirror: str, cas: Sequence[Path], root: Path | None = None) -> Path:
    return (root or cache_root()) / "base-image" / f"debian-{SUITE}-python3-{base_key(mirror, cas)}.tar.gz"


def build_root_tarball(target: Path, mirror: str, cas: Sequence[Path], say: Echo) -> None:
    """debootstrap the stand-in root and pack it into `target` (written atomically)."""
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (`make image-tools` installs it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=target.parent) as work:
        rootfs = Path(work) / "root"
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), mirror]
        run_with_progress(argv, what=f"debootstrap {SUITE} + Python 3.11 from {mirror}", say=say)
        for ca in cas:
            shutil.copy2(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        if cas:
            subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True)
        for junk in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
            for child in (rootfs / junk).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        partial = target.with_suffix(".partial")
        run_with_progress(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-czf", str(partial), "."], what="packing", say=say
        )
        partial.replace(target)


def ensure_base_image(podman: Podman, name: str | None = None, *, echo: Echo | None = None) -> str:
    """Make the Dockerfile's base image `name` exist in Podman's storage: as it is when present
    (pulled or imported before), else imported from the cached tarball, else built first.
    Returns the name."""
    say = echo or _say
    name = name or dockerfile_base()
    if podman.image_exists(name):
        return name
    mirror = debian_mirror()
    cas = local_cas()
    tarball = base_tarball(mirror, cas)
    with _build_lock(tarball):  # two sessions on a cold machine build it once
        if not tarball.exists():
            say(f"[fusioninfer] no registry here: building a stand-in for {name} (once; cached in {tarball.parent})")
            build_root_tarball(tarball, mirror, cas, say)
    changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
    run_with_progress(
        podman.argv("import", "--quiet", *changes, str(tarball), name),
        what=f"podman import {tarball.name} as {name}",
        say=say,
        env=podman.environ(),
    )
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m fusioninfer_dev.localcluster.image base|flags`: make the stand-in base image, or
    print the Podman flags and environment used here."""
    args = list(sys.argv[1:] if argv is None else argv)
    podman = Podman.detect()
    if podman is None:
        _say("podman is not installed (`make image-tools` installs it)")
        return 1
    if args == ["base"]:
        try:
            print(ensure_base_image(podman))
        except ImageError as exc:
            _say(str(exc))
            return 1
        return 0
    if args == ["flags"]:
        print(" ".join([*(f"{k}={v}" for k, v in podman.env.items()), *podman.argv()]))
        return 0
    _say("usage: python -m fusioninfer_dev.localcluster.image base|flags")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
