"""Parallel requests with retries, as every driver of the benchmark sends them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import httpx
import httpx2
from lightkube import ApiError

from bench.setup import T
from fusioninfer.kube.retry import exponential_delay


async def with_retries(fn: Callable[[], Awaitable[T]], counter: list[int], attempts: int = 6) -> T:
    """`fn()`, retried on 429/5xx/transport errors (a loaded apiserver sheds load that way)."""
    for attempt in range(attempts):
        try:
            return await fn()
        except ApiError as exc:
            if exc.status.code not in (409, 429, 500, 503, 504) or attempt == attempts - 1:
                raise
        except (httpx.TransportError, httpx2.TransportError):  # lightkube's client is httpx2
            if attempt == attempts - 1:
                raise
        counter[0] += 1
        await asyncio.sleep(exponential_delay(attempt, base=0.1, cap=3.2))
    raise AssertionError("unreachable")


async def run_pool(items: Sequence[T], concurrency: int, fn: Callable[[T], Awaitable[None]]) -> None:
    """`fn(item)` for every item, at most `concurrency` at a time; the first error cancels the rest."""
    queue: asyncio.Queue[T] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await fn(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(items)) or 1):
            group.create_task(worker())
