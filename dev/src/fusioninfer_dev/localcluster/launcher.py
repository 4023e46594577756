"""Starting, watching and stopping one local cluster's processes.

Every process is started detached from our session (it outlives the CLI call that ran `up`),
logs to the state dir, and is recorded in the state file before anything else happens, so
`down` can always find it. It is signalled only while it is provably ours: an unreaped child of
this very object, or a process whose `/proc` entry still shows the recorded argv and start time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping

import httpx

from fusioninfer_dev.localcluster.processes import ProcessRecord, is_our_process, proc_cmdline, proc_start_time
from fusioninfer_dev.localcluster.state import ClusterError, ClusterState

POLL_INTERVAL = 0.1


class ProcessLauncher:
    """The processes of the cluster whose state is `state`."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ProcessRecord:
        """Start `argv` as component `name` and record it."""
        self._state.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self._state.log_path(name)
        with log.open("ab") as fh:
            fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=self._state.dir,
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
        self._state.record_process(record)
        return record

    def log_tail(self, name: str, lines: int = 25) -> str:
        try:
            text = self._state.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self, name: str) -> None:
        """Raise ClusterError (with the log's tail) unless `name` is running."""
        rec = self._state.processes().get(name)
        if rec is None:
            raise ClusterError(f"{name} was never started")
        proc = self._children.get(rec.pid)
        code = proc.poll() if proc is not None else None
        # An unreaped child of ours cannot have had its PID recycled: poll() is the whole truth.
        alive = code is None if proc is not None else is_our_process(rec)
        if not alive:
            how = f"exit code {code}" if code is not None else f"pid {rec.pid} gone"
            raise ClusterError(
                f"{name} exited during start-up ({how}); log {self._state.log_path(name)}:\n{self.log_tail(name)}"
            )

    def wait_until(self, name: str, probe: Callable[[], str | None], timeout: float, what: str) -> None:
        """Poll `probe` (None: done; else what it saw) until done, failing fast if `name` dies
        and with the last observation and the log's tail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive(name)
            seen = probe()
            if seen is None:
                return
            last = seen
            time.sleep(POLL_INTERVAL)
        raise ClusterError(f"{name} {what} after {timeout}s ({last}); log:\n{self.log_tail(name)}")

    def wait_http(self, name: str, url: str, timeout: float, auth: str | None = None) -> None:
        """Wait until `url` answers 200."""
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        with httpx.Client(verify=False, timeout=2.0, trust_env=False) as http:

            def probe() -> str | None:
                try:
                    resp = http.get(url, headers=headers)
                except httpx.HTTPError as exc:
                    return repr(exc)
                return None if resp.status_code == 200 else f"HTTP {resp.status_code}: {resp.text[:300]}"

            self.wait_until(name, probe, timeout, "not ready")

    def terminate(self, rec: ProcessRecord, timeout: float) -> bool:
        """Stop `rec` (SIGTERM, SIGKILL after `timeout`) if and only if it is still exactly our
        process. Returns True if signalled."""
        proc = self._children.pop(rec.pid, None)
        # An unreaped child of ours is ours beyond doubt (its PID cannot have been recycled), even
        # in the instant after exec when /proc/<pid>/cmdline is still empty; anything else must
        # prove its identity through /proc.
        if proc is not None:
            if proc.poll() is not None:
                return False  # already exited (and now reaped)
        elif not is_our_process(rec):
            return False

        def running() -> bool:
            return proc.poll() is None if proc is not None else is_our_process(rec)

        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running():
            time.sleep(0.05)
        if running():
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
