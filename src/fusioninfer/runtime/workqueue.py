"""An asyncio work queue with client-go's semantics (k8s.io/client-go/util/workqueue) and
controller-runtime's priorities (pkg/controller/priorityqueue).

The three sets that make a controller level-triggered and safe:

* ``queue``      keys waiting for a worker: highest priority first, FIFO within a priority;
* ``dirty``      keys that need processing (queued, or re-added while being processed);
* ``processing`` keys a worker holds right now.

so that

* a key added N times before a worker takes it is processed once (de-duplication), at the
  highest priority any of those adds asked for (a queued key is promoted, never demoted);
* a key added while a worker processes it is *not* handed to a second worker; it is re-queued by
  ``done()`` and processed again afterwards (the latest state is always looked at, never twice
  concurrently);
* ``add_after`` parks a key on a timer (a key parked twice keeps the earlier deadline and the
  higher priority);
* ``add_rate_limited`` asks a `RateLimiter` (`ratelimit.py`) how long to wait; the retry keeps
  the priority the key was taken with.

Why priorities: without them a user's edit, or a service just created, waits behind every
status refresh already queued (a pod appearing, a Deployment's status changing, the echo of
our own status write), which at a thousand services is seconds. The controller adds what a user
did to an InferenceService at `NORMAL`, and what only refreshes status at `LOW`
(`loop.py` decides which is which); waiting LOW keys also coalesce more of their events.

Everything runs on one event loop, so there is no locking: every method except ``get`` and
``shutdown_with_drain`` is synchronous and must be called from the loop's thread.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics
from fusioninfer.runtime.ratelimit import RateLimiter, default_controller_rate_limiter

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]

# controller-runtime's handler.LowPriority is -100 and the default 0.
LOW = -100
NORMAL = 0


class ShutDownError(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down and has nothing left to hand out."""


# ---------------------------------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------------------------------


class WorkQueue(Generic[K]):
    """De-duplicating, delaying, rate-limited priority queue of keys. See the module docstring.

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
        # One FIFO lane of (ticket, key) per priority. A promoted key leaves a stale entry in its
        # old lane; `_queued` holds each waiting key's live (priority, ticket), so stale entries
        # are skipped when they reach the front.
        self._lanes: dict[int, deque[tuple[int, K]]] = {}
        self._queued: dict[K, tuple[int, int]] = {}
        self._tickets = itertools.count()
        # key -> the highest priority asked for since a worker last took it
        self._dirty: dict[K, int] = {}
        # key -> the priority it was taken with
        self._processing: dict[K, int] = {}
        self._shutting_down = False
        self._discard_pending = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._drained: asyncio.Event | None = None
        # Set while no key waits for a worker and none is being processed; `_idle_since` is when
        # it was last set, so that `wait_idle` can tell a lull from a pause between two keys.
        self._idle = asyncio.Event()
        self._idle.set()
        self._idle_since = clock()
        # delayed adds: key -> (deadline, priority, timer). A key waits on at most one timer.
        self._waiting: dict[K, tuple[float, int, asyncio.TimerHandle]] = {}
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
        return len(self._queued)

    def priority_of(self, key: K) -> int | None:
        """The priority `key` waits at, or None if it is not waiting for a worker."""
        entry = self._queued.get(key)
        return entry[0] if entry is not None else None

    async def wait_idle(self, settle: float) -> None:
        """Until no key has waited for a worker nor been processed for `settle` seconds in a row.

        A key being processed counts as work: a worker that keeps up with a burst (each key taken
        as soon as it arrives) leaves the queue empty but not idle. Delayed keys do not count.
        This is the lull after a burst, for work that should not compete with it, such as the
        operator's Normal Events.
        """
        while True:
            await self._idle.wait()
            since = self._idle_since
            remaining = settle - (self._clock() - since)
            if remaining > 0:
                await asyncio.sleep(remaining)
            if self._idle.is_set() and self._idle_since == since:
                return

    def _check_idle(self) -> None:
        if not self._queued and not self._processing and not self._idle.is_set():
            self._idle_since = self._clock()
            self._idle.set()

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

    def add(self, key: K, priority: int = NORMAL) -> bool:
        """Mark `key` as needing processing at `priority` (higher first). A key already pending
        is not added twice; it is promoted if `priority` is higher. No-op after shutdown.
        Returns whether this call made the key pending (it was not already)."""
        if self._shutting_down:
            return False
        pending = self._dirty.get(key)
        if pending is not None:
            if priority > pending:
                self._dirty[key] = priority
                if key in self._queued:
                    self._enqueue(key, priority)
            return False
        self._m_adds.inc()
        self._m_depth.inc()
        self._added_at.setdefault(key, self._clock())
        self._dirty[key] = priority
        if key not in self._processing:  # else done() will requeue it
            self._enqueue(key, priority)
        return True

    def _enqueue(self, key: K, priority: int) -> None:
        ticket = next(self._tickets)
        self._queued[key] = (priority, ticket)
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = deque()
        lane.append((ticket, key))
        self._idle.clear()
        self._wake_one()

    def _pop(self) -> K:
        """The first live key of the highest non-empty lane (there must be one)."""
        for priority in sorted(self._lanes, reverse=True):
            lane = self._lanes[priority]
            while lane:
                ticket, key = lane.popleft()
                if self._queued.get(key) == (priority, ticket):
                    del self._queued[key]
                    if not lane:
                        del self._lanes[priority]
                    return key
            del self._lanes[priority]
        raise LookupError("no key is waiting")

    def add_after(self, key: K, delay: float, priority: int = NORMAL) -> None:
        """Add `key` at `priority` once `delay` seconds have passed (at once if `delay <= 0`).

        A key already waiting keeps whichever deadline is earlier (client-go semantics) and
        whichever priority is higher (controller-runtime's).
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key, priority)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        existing = self._waiting.get(key)
        if existing is not None:
            old_deadline, old_priority, handle = existing
            if old_deadline <= deadline and old_priority >= priority:
                return
            handle.cancel()
            deadline, priority = min(deadline, old_deadline), max(priority, old_priority)
        timer = loop.call_at(deadline, self._fire, key, priority)
        self._waiting[key] = (deadline, priority, timer)

    def _fire(self, key: K, priority: int) -> None:
        self._waiting.pop(key, None)
        self.add(key, priority)

    def add_rate_limited(self, key: K, priority: int | None = None) -> None:
        """Re-add `key` after the rate limiter's delay (a failed attempt: counts a retry), at
        `priority` or, by default, at the priority a worker took it with (NORMAL otherwise)."""
        if self._shutting_down:
            return
        self._m_retries.inc()
        if priority is None:
            priority = self._processing.get(key, NORMAL)
        self.add_after(key, self.rate_limiter.when(key), priority)

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
        while not self._queued or self._discard_pending:
            if self._shutting_down:
                raise ShutDownError(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If we were woken and then cancelled, pass the wake-up on so no key is stranded.
                if fut.done() and not fut.cancelled() and self._queued:
                    self._wake_one()
                raise
        key = self._pop()
        now = self._clock()
        self._m_depth.dec()
        added = self._added_at.pop(key, None)
        if added is not None:
            self._m_queue_dur.observe(now - added)
        self._started_at[key] = now
        self._processing[key] = self._dirty.pop(key, NORMAL)
        if self._queued:  # more work: make sure another idle getter looks at it
            self._wake_one()
        return key

    def done(self, key: K) -> None:
        """Processing of `key` finished; if it was re-added meanwhile, queue it again now."""
        started = self._started_at.pop(key, None)
        if started is not None:
            self._m_work_dur.observe(self._clock() - started)
        self._processing.pop(key, None)
        again = self._dirty.get(key)
        if again is not None and not self._discard_pending:
            self._enqueue(key, again)
        if not self._processing and self._drained is not None:
            self._drained.set()
        self._check_idle()

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
            for _ in range(len(self._queued)):
                self._m_depth.dec()
            self._lanes.clear()
            self._queued.clear()
            self._dirty.clear()
            self._added_at.clear()
            self._check_idle()
        for _, _, timer in self._waiting.values():
            timer.cancel()
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
