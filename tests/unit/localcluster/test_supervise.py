"""The supervisor that restarts the operator outside a cluster, as a Deployment would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from fusioninfer_dev.localcluster.supervise import Backoff, supervise


def test_backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() -> None:
    b = Backoff(initial=1, maximum=8, healthy_after=60)
    assert [b.next_delay(0) for _ in range(5)] == [1, 2, 4, 8, 8]
    assert b.next_delay(61) == 1
    assert b.next_delay(1) == 2


def test_a_command_that_exits_is_restarted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    script = f"echo run >> {runs}; exit 3"
    lines: list[str] = []
    code = supervise(
        ["sh", "-c", script], backoff=Backoff(initial=0.01, maximum=0.02), say=lines.append, max_restarts=2
    )
    assert code == 3
    assert runs.read_text().count("run") == 3
    assert lines[0].startswith("sh exited with 3 after 0s; restart 1 in 0s")
    assert "not restarting (limit 2)" in lines[-1]


def test_sigterm_reaches_the_command_and_ends_supervision() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusioninfer_dev.localcluster.supervise", "--", "sleep", "30"],
        stderr=subprocess.PIPE,
    )
    # The handlers are installed before the command starts: wait for the command, not a guess.
    # The command, not merely the forked child: a SIGTERM forwarded between fork and exec lands
    # on a copy of the Python process that never runs Python again, and is lost (seen on a
    # loaded machine).
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 30

    def command_running() -> bool:
        pids = children.read_text().split()
        return bool(pids) and Path(f"/proc/{pids[0]}/comm").read_text().strip() == "sleep"

    while not command_running():
        assert proc.poll() is None, "the supervisor exited before starting its command"
        assert time.monotonic() < deadline, "the supervisor never started its command"
        time.sleep(0.02)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM  # the command's own fate, as a shell reports it
    assert time.monotonic() - started < 5
