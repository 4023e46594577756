"""Keep a process running the way a Deployment keeps its pod running: restart it when it exits.

`fusioninfer run` exits by design when it loses its leader Lease (for example during a long
apiserver outage): in a cluster the kubelet restarts it. Outside a cluster (`make run`, the
demo) this supervisor does: it restarts the command after it exits, with a back-off like the
kubelet's (1 s doubling to 30 s, reset after a minute of healthy running), and passes SIGTERM
and SIGINT on to it, exiting with the command's own code once that stops on request.

    python -m fusioninfer_dev.localcluster.supervise -- fusioninfer run --kubeconfig K
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from fusioninfer.kube.retry import exponential_delay

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0


@dataclass
class Backoff:
    """The delay before the next restart (pure; unit-tested)."""

    initial: float = INITIAL_BACKOFF
    maximum: float = MAX_BACKOFF
    healthy_after: float = HEALTHY_AFTER
    failures: int = field(default=0, init=False)

    def next_delay(self, ran_for: float) -> float:
        """The delay after a run of `ran_for` seconds: reset after a healthy run, else doubled."""
        if ran_for >= self.healthy_after:
            self.failures = 0
        delay = exponential_delay(self.failures, base=self.initial, cap=self.maximum)
        self.failures += 1
        return delay


def supervise(
    argv: Sequence[str],
    *,
    backoff: Backoff | None = None,
    say: Callable[[str], None] | None = None,
    max_restarts: int | None = None,
) -> int:
    """Run `argv` until it exits after a stop request; returns its exit code."""
    echo = say or (lambda line: print(f"[supervise] {line}", file=sys.stderr, flush=True))
    delays = backoff or Backoff()
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    restarts = 0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(list(argv))
        code = child.wait()
        if stopping:
            return code
        ran_for = time.monotonic() - started
        if max_restarts is not None and restarts >= max_restarts:
            echo(f"{argv[0]} exited with {code} after {ran_for:.0f}s; not restarting (limit {max_restarts})")
            return code
        delay = delays.next_delay(ran_for)
        restarts += 1
        echo(f"{argv[0]} exited with {code} after {ran_for:.0f}s; restart {restarts} in {delay:.0f}s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
        if stopping:
            return code


def main(args: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m fusioninfer_dev.localcluster.supervise -- COMMAND [ARGS...]", file=sys.stderr)
        sys.exit(2)
    code = supervise(argv)
    # A command killed by a signal reports -N; a shell reports 128+N, and so do we.
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
