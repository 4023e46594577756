"""Retry delays for the work queue, with client-go's semantics (k8s.io/client-go/util/workqueue).

``add_rate_limited`` asks a `RateLimiter` how long a failed key waits: per-key exponential
backoff (5 ms doubling up to 5 min) combined with a global token bucket (10 qps, burst 100),
the larger wait wins; ``forget`` resets the key's backoff after a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from fusioninfer.kube.retry import exponential_delay

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


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
