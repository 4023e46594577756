"""`eventually`: retry a check until it holds, for assertions about an eventually consistent system.

Controllers, the scheduler and KWOK all act asynchronously, so integration tests
assert "this becomes true within N seconds" instead of sleeping a guessed amount.

Two styles of check are supported:

- a *predicate* (lambdas, or functions returning a value): passes when it returns a truthy value
  (which `eventually` returns) without raising AssertionError; a falsy value means "not yet";
- an *assertion block*: a function annotated `-> None` passes as soon as it returns without
  raising AssertionError (it can only say "not yet" by failing an assert).

Any other exception is a bug in the test or the system and propagates at once (pass `retry_on`
to also retry e.g. ApiError). On timeout, the last AssertionError (or the last falsy value) is
reported.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_INTERVAL = 0.1


class EventuallyTimeout(AssertionError):
    """The condition did not hold within the timeout (an AssertionError, so pytest shows it as a failure)."""


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _assertion_block(fn: object) -> bool:
    """True for a function declared `-> None`: its success is "returned without raising"."""
    annotations = getattr(fn, "__annotations__", None) or {}
    return "return" in annotations and annotations["return"] in (None, "None", type(None))


def _passed(fn: object, value: object) -> bool:
    return bool(value) or (value is None and _assertion_block(fn))


def eventually(
    fn: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (),
    message: str = "",
) -> T:
    """Call `fn` until it returns a truthy value (or, if declared `-> None`, simply returns)
    without raising AssertionError (or one of `retry_on`); return that value. Raise
    EventuallyTimeout after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    retryable: tuple[type[BaseException], ...] = (AssertionError, *retry_on)
    attempts = 0
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        attempts += 1
        try:
            value = fn()
            if _passed(fn, value):
                return value
            last_value, last_error = value, None
        except retryable as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise _timeout(fn, timeout, attempts, last_error, last_value, message)


@overload
async def eventually_async(
    fn: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually_async(
    fn: Callable[[], T],
    *,
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
    message: str = ...,
) -> T: ...


async def eventually_async(
    fn: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - same signature as the sync flavour, on purpose
    interval: float = DEFAULT_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (),
    message: str = "",
) -> Any:
    """`eventually` for async code: `fn` may be a coroutine function or a plain function; waits
    with `asyncio.sleep` so the event loop (and whatever runs on it) keeps going."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    retryable: tuple[type[BaseException], ...] = (AssertionError, *retry_on)
    attempts = 0
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        attempts += 1
        try:
            result = fn()
            value = await result if inspect.isawaitable(result) else result
            if _passed(fn, value):
                return value
            last_value, last_error = value, None
        except retryable as exc:
            last_error = exc
        if loop.time() >= deadline:
            break
        await asyncio.sleep(interval)
    raise _timeout(fn, timeout, attempts, last_error, last_value, message)


def _timeout(
    fn: object, timeout: float, attempts: int, error: BaseException | None, value: object, message: str
) -> EventuallyTimeout:
    what = f"{message}: " if message else ""
    detail = f"last error: {type(error).__name__}: {error}" if error is not None else f"last value: {value!r}"
    exc = EventuallyTimeout(f"{what}{_describe(fn)} did not succeed within {timeout}s ({attempts} attempts); {detail}")
    exc.__cause__ = error
    return exc
