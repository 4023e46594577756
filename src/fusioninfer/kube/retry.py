"""The delay before the next attempt: exponential back-off, capped, optionally jittered.

Every retry loop against the apiserver waits like this (client-go's `wait.Backoff`): quickly
after one failure, so a blip costs little, doubling on every further failure, so a persistent
failure settles at one try every `cap` seconds instead of a hot loop. Jitter spreads replicas
(or informers) that failed at the same moment, so they do not all retry in the same instant.
"""

from __future__ import annotations

import random

# 2**64 times any sensible base is far beyond any cap; stop doubling there to avoid huge floats.
_MAX_EXPONENT = 64


def exponential_delay(attempt: int, *, base: float, cap: float) -> float:
    """``base * 2**attempt`` seconds (attempt 0 is the first retry), at most `cap`."""
    if attempt >= _MAX_EXPONENT:
        return cap
    return min(base * (2.0**attempt), cap)


def jittered(delay: float, low: float, high: float) -> float:
    """`delay` scaled by a random factor in ``[low, high]`` (``0.5, 1.0``: up to half shorter;
    ``1.0, 1.2``: up to a fifth longer, client-go's `wait.Jitter`)."""
    return delay * random.uniform(low, high)
