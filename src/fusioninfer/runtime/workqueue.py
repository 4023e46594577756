"""An asyncio rate-limiting work queue with client-go's semantics (k8s.io/client-go/util/workqueue).

The three sets that make a controller level-triggered and safe:

* ``queue``      keys waiting for a worker, FIFO;
* ``dirty``      keys that need processing (queued, or re-added while being processed);
* ``processing`` keys a worker holds right now.

so that

* a key added N times before a worker takes it is processed once (de-duplication);
* a key added while a worker processes it is *not* handed to a second worker; it is re-queued by
  ``done()`` and processed again afterwards (the latest state is always looked at, never twice
  concurrently);
* ``add_after`` parks a key on a timer (a key parked twice keeps the earlier deadline);
* ``add_rate_limited`` asks a `RateLimiter` how long to wait: per-key exponential backoff
  (5 ms doubling up to 5 min) combined with a global token bucket (10 qps, burst 100), the
  larger wait wins; ``forget`` resets the key's backoff after a success.

Everything runs on one event loop, so there is no locking: every method except ``get`` and
``shutdown_with_drain`` is synchronous and must be called from the loop's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from fusioninfer.kube.retry import exponential_delay
from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


class ShutDownError(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down and has nothing left to hand out."""


# ---------------------------------------------------------------------------------------------------
# Rate limiters
# ---------------------------------------------------------------------------------------------------


class RateLimiter(Protocol[K]):  # type: ignore[misc]
    """How long to wait before retrying `item` (client-go's workqueue.RateLimiter)."""

    def when(self, item: K) -> float: ...

    def forget(self, item: K) -> None: ...

    def num_requeues(self, item: K) -> int: ...


class ItemExponentialFailureRateLimiter(Generic[K]):
    """Per-item backoff: ``base * 2**failures``, capped at ``max_delay``.

    Why per item: one broken object must not slow the others down, and a healthy object that
    failed once must come back quickly (5 ms), while a persistently failing one settles at one try
    every ``max_delay`` instead of a hot loop.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 300.0) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[K, int] = {}

    def when(self, item: K) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        return exponential_delay(exp, base=self.base_delay, cap=self.max_delay)

    def forget(self, item: K) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: K) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[K]):
    """A global token bucket (golang.org/x/time/rate semantics with reservations).

    Each call reserves one token; when the bucket is empty the reservation lies in the future and
    the returned delay is the wait until that token exists. This caps the overall retry rate
    (``qps``) while still letting a burst of ``burst`` retries through at once, e.g. after an
    apiserver outage made every key fail at the same time.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("need qps > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, item: K) -> float:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    def forget(self, item: K) -> None:  # the bucket is global: nothing per item to forget
        return

    def num_requeues(self, item: K) -> int:
        return 0


class MaxOfRateLimiter(Generic[K]):
    """Asks every limiter (each one records the attempt) and waits for the longest answer."""

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        if not limiters:
            raise ValueError("need at least one limiter")
        self.limiters = limiters

    def when(self, item: K) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: K) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(
    base_delay: float = 0.005,
    max_delay: float = 300.0,
    qps: float = 10.0,
    burst: int = 100,
) -> MaxOfRateLimiter[K]:
    """client-go's DefaultControllerRateLimiter (with a 5 min cap instead of 1000 s)."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(base_delay, max_delay), BucketRateLimiter(qps, burst))


# ---------------------------------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------------------------------


class WorkQueue(Generic[K]):
    """De-duplicating, delaying, rate-limited FIFO of keys. See the module docstring.

    ``name`` labels the ``workqueue_*`` metrics (use the controller name).
    """

    def __init__(
        self,
        name: str = "",
        *,
        rate_limiter: RateLimiter[K] | None = None,
        metrics: RuntimeMetrics | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.rate_limiter: RateLimiter[K] = (
            rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        )
        self._clock = clock
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._shutting_down = False
        self._discard_pending = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drained: asyncio.Event | None = None
        # Set while no key waits for a worker (processing and delayed keys do not count).
        self._empty = asyncio.Event()
        self._empty.set()
        # delayed adds: key -> (deadline, timer). A key waits on at most one timer.
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        # metrics bookkeeping
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        m = metrics if metrics is not None else default_metrics()
        self._m_depth = m.workqueue_depth.labels(name=name)
        self._m_adds = m.workqueue_adds_total.labels(name=name)
        self._m_queue_dur = m.workqueue_queue_duration_seconds.labels(name=name)
        self._m_work_dur = m.workqueue_work_duration_seconds.labels(name=name)
        self._m_retries = m.workqueue_retries_total.labels(name=name)
        m.workqueue_unfinished_work_seconds.labels(name=name).set_function(self.unfinished_work_seconds)
        m.workqueue_longest_running_processor_seconds.labels(name=name).set_function(
            self.longest_running_processor_seconds
        )

    # -- introspection ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys waiting for a worker (not counting processing or delayed ones)."""
        return len(self._queue)

    async def wait_empty(self) -> None:
        """Until no key waits for a worker (keys being processed or delayed do not count): for
        work that should yield to reconciles, such as the operator's Normal Events."""
        await self._empty.wait()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def waiting_count(self) -> int:
        """Keys parked by add_after / add_rate_limited."""
        return len(self._waiting)

    def unfinished_work_seconds(self) -> float:
        now = self._clock()
        return sum(now - t for t in self._started_at.values())

    def longest_running_processor_seconds(self) -> float:
        if not self._started_at:
            return 0.0
        return self._clock() - min(self._started_at.values())

    # -- adding -------------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Mark `key` as needing processing. No-op if already pending or after shutdown."""
        if self._shutting_down or key in self._dirty:
            return
        self._m_adds.inc()
        self._m_depth.inc()
        self._added_at.setdefault(key, self._clock())
        self._dirty.add(key)
        if key in self._processing:
            return  # done() will requeue it
        self._queue.append(key)
        self._empty.clear()
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` once `delay` seconds have passed (at once if `delay <= 0`).

        A key already waiting keeps whichever deadline is earlier (client-go semantics).
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        existing = self._waiting.get(key)
        if existing is not None:
            if existing[0] <= deadline:
                return
            existing[1].cancel()
        handle = loop.call_at(deadline, self._fire, key)
        self._waiting[key] = (deadline, handle)

    def _fire(self, key: K) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> None:
        """Re-add `key` after the rate limiter's delay (a failed attempt: counts a retry)."""
        if self._shutting_down:
            return
        self._m_retries.inc()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset `key`'s backoff (call after a successful attempt). Does not dequeue it."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)

    # -- taking -------------------------------------------------------------------------------------

    def _wake_one(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    async def get(self) -> K:
        """Wait for a key and mark it as processing; the caller MUST call `done(key)` later.

        Raises `ShutDownError` when the queue is shut down and (unless shut down with
        ``discard_pending``) empty: like client-go, keys queued before `shutdown()` are still
        handed out so nothing already accepted is silently lost.
        """
        while not self._queue or self._discard_pending:
            if self._shutting_down:
                raise ShutDownError(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If we were woken and then cancelled, pass the wake-up on so no key is stranded.
                if fut.done() and not fut.cancelled() and self._queue:
                    self._wake_one()
                raise
        key = self._queue.popleft()
        now = self._clock()
        self._m_depth.dec()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._m_queue_dur.observe(now - added)
        self._started_at[key] = now
        self._processing.add(key)
        self._dirty.discard(key)
        if self._queue:  # more work: make sure another idle getter looks at it
            self._wake_one()
        else:
            self._empty.set()
        return key

    def done(self, key: K) -> None:
        """Processing of `key` finished; if it was re-added meanwhile, queue it again now."""
        started = self._started_at.pop(key, None)
        if started is not None:
            self._m_work_dur.observe(self._clock() - started)
        self._processing.discard(key)
        if key in self._dirty and not self._discard_pending:
            self._queue.append(key)
            self._empty.clear()
            self._wake_one()
        if not self._processing and self._drained is not None:
            self._drained.set()

    # -- shutdown -----------------------------------------------------------------------------------

    def shutdown(self, *, discard_pending: bool = False) -> None:
        """Stop accepting keys, cancel delayed adds and wake every waiting `get`.

        With ``discard_pending`` the keys still queued are dropped instead of handed out: a
        controller stopping on SIGTERM finishes what its workers hold and leaves the rest to the
        next leader (which relists anyway).
        """
        self._shutting_down = True
        if discard_pending:
            self._discard_pending = True
            for _ in range(len(self._queue)):
                self._m_depth.dec()
            self._queue.clear()
            self._empty.set()
            self._dirty.clear()
            self._added_at.clear()
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._wake_all()

    async def shutdown_with_drain(self, *, discard_pending: bool = False) -> None:
        """`shutdown()` then wait until every key being processed is `done()`.

        Wrap in `asyncio.timeout(...)` to bound the wait.
        """
        self.shutdown(discard_pending=discard_pending)
        if not self._processing:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        await self._drained.wait()
