"""Which processes are ours: every process the local cluster starts is recorded with its full argv
and its kernel start time, and is signalled only while `/proc/<pid>` still shows exactly that
process, so a recycled PID or somebody else's etcd is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ProcessRecord:
    """A process we started: enough to recognise it later with certainty."""

    name: str
    pid: int
    argv: list[str]
    start_time: int | None
    log: str


def proc_start_time(pid: int) -> int | None:
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


def proc_cmdline(pid: int) -> list[str] | None:
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
    start = proc_start_time(record.pid)
    if start is None:
        return False
    if record.start_time is not None and start != record.start_time:
        return False
    return proc_cmdline(record.pid) == record.argv


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when its parent dies, even by SIGKILL
    (PR_SET_PDEATHSIG), so that a pod's processes and Envoy never outlive the local cluster."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def stop_child(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM a child we started, SIGKILL it after `timeout` s; nothing if it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def source_roots() -> tuple[str, ...]:
    """The directories that hold the imported `fusioninfer` and `fusioninfer_dev` packages: on a
    child's PYTHONPATH they make it run exactly this code (a worktree's, not another checkout's)."""
    import fusioninfer
    import fusioninfer_dev

    roots = (Path(module.__file__ or "").resolve().parents[1] for module in (fusioninfer, fusioninfer_dev))
    return tuple(dict.fromkeys(str(root) for root in roots))
