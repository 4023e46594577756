"""Long steps of the development harness (Go builds, debootstrap, image builds) run with a
progress line every so often, since the tools themselves are silent for minutes, and with their
last output lines in the error when they fail."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Echo = Callable[[str], None]


def format_duration(seconds: float) -> str:
    """`7m05s` / `42s`: how progress and summaries show elapsed time."""
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def latest_line(_counted: int, last: str) -> str:
    """The default progress detail: the step's latest output line, shortened."""
    return f" ({last[:100]})"


def run_with_progress(
    argv: Sequence[str],
    *,
    what: str,
    say: Echo,
    interval: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    counts: Callable[[str], bool] = lambda _line: True,
    detail: Callable[[int, str], str] = latest_line,
    error: Callable[[str], Exception] = RuntimeError,
) -> None:
    """Run `argv`, saying `what`, the time so far and `detail(lines counted, latest line)` every
    `interval` s, and `done in ...` at the end; raise `error(...)` with the last 40 lines when
    it exits non-zero. `counts` picks the output lines that measure progress (e.g. packages)."""
    started = time.monotonic()
    counted = 0
    tail: list[str] = []
    done = threading.Event()

    def ticker() -> None:
        while not done.wait(interval):
            extra = detail(counted, tail[-1] if tail else "")
            say(f"[fusioninfer] {what}: {format_duration(time.monotonic() - started)} so far{extra}")

    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-39:], line]
            if counts(line):
                counted += 1
        rc = proc.wait()
    finally:
        done.set()
        thread.join()
    if rc != 0:
        raise error(f"{what} failed (exit code {rc}); last lines:\n" + "\n".join(tail))
    say(f"[fusioninfer] {what}: done in {format_duration(time.monotonic() - started)}")
