"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go's leaderelection, in asyncio).

Two or more replicas of the operator run; exactly one reconciles. Each replica periodically
(`retry_period`) reads the Lease and:

* if nobody holds it, the holder released it (``holderIdentity`` empty), or the holder has not
  renewed it for ``leaseDurationSeconds``: writes itself in as holder;
* if it is the holder: writes a fresh ``renewTime``;
* otherwise waits.

Every write is a PUT carrying the ``resourceVersion`` that was read (or a POST for a missing
Lease), so two replicas racing for a free lease cannot both win: the loser gets 409 Conflict.

Expiry is judged, as in client-go, by the *local monotonic* time at which this replica last saw
the record change, never by comparing the remote ``renewTime`` with the local clock, so clock skew
between machines cannot make two leaders. The price: a replica that starts while a dead leader's
lease is still in place waits one full lease duration before taking over.

The leader must renew successfully at least every `renew_deadline` seconds; otherwise (apiserver
unreachable, or another replica holds the lease) it stops leading: `run()` cancels the work and
raises `LeadershipLost`, and the process should exit so that it restarts as a follower. On
graceful shutdown (cancelling `run()`), the lease is released (holder emptied, duration 1 s) so
that another replica takes over at its next retry instead of after a lease duration.

The decision logic (`LeaseRecord`, `decide`) is pure and lives in `runtime.lease`, so it is
unit-tested without a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import inspect
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lightkube import ApiError, AsyncClient
from lightkube.resources.coordination_v1 import Lease

from fusioninfer.kube.retry import jittered
from fusioninfer.runtime.lease import Action, LeaseRecord, decide, released
from fusioninfer.runtime.metrics import RuntimeMetrics, default_metrics
from fusioninfer.runtime.registry import raw_resource

log = logging.getLogger(__name__)

T = TypeVar("T")
Callback = Callable[[], "Awaitable[None] | None"]
NewLeaderCallback = Callable[[str], "Awaitable[None] | None"]

_RawLease = raw_resource(Lease)


class LeadershipLost(Exception):
    """Raised by `LeaderElector.run` when this replica could not keep the lease."""


def default_identity() -> str:
    """``<hostname>_<uuid4>``: unique per process even when two replicas share a host name."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass
class LeaderElectionConfig:
    lease_name: str
    lease_namespace: str
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    jitter: float = 0.2  # retry waits are retry_period * U(1, 1 + jitter)
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not (self.lease_duration > self.renew_deadline > self.retry_period * (1 + self.jitter) > 0):
            raise ValueError("need lease_duration > renew_deadline > retry_period * (1 + jitter) > 0")


class _Outcome(enum.Enum):
    LEADING = 1
    OTHER_HOLDS = 2
    FAILED = 3


async def _maybe_await(res: object) -> None:
    if inspect.isawaitable(res):
        await res


class LeaderElector:
    """Runs work only while holding the Lease. See the module docstring.

    ``await elector.run(lambda: controller.run())``: blocks until the lease is acquired, runs the
    work, renews in the background; returns the work's result if it finishes, raises
    `LeadershipLost` (after cancelling the work) if the lease could not be kept, and on
    cancellation cancels the work and releases the lease (unless `release_on_cancel` is False).
    """

    def __init__(
        self,
        client: AsyncClient,
        config: LeaderElectionConfig,
        *,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: NewLeaderCallback | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._client = client
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        m = metrics if metrics is not None else default_metrics()
        self._m_status = m.leader_election_master_status.labels(name=config.lease_name)
        self._m_status.set(0)
        self._observed: LeaseRecord | None = None
        self._observed_at = time.monotonic()
        self._observed_rv: str | None = None
        self._leader = False
        self._last_leader: str | None = None
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def observed_leader(self) -> str:
        """Holder of the lease as last read ("" if none)."""
        return self._observed.holder_identity if self._observed else ""

    def _sleep_time(self) -> float:
        c = self.config
        return jittered(c.retry_period, 1.0, 1.0 + c.jitter)

    async def _read(self) -> tuple[LeaseRecord | None, str | None]:
        c = self.config
        try:
            lease = await self._client.get(_RawLease, c.lease_name, namespace=c.lease_namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None, None
            raise
        meta = lease.get("metadata") or {}
        return LeaseRecord.from_spec(lease.get("spec")), meta.get("resourceVersion")

    def _observe(self, record: LeaseRecord | None, rv: str | None) -> None:
        if record != self._observed or rv != self._observed_rv:
            self._observed = record
            self._observed_rv = rv
            self._observed_at = time.monotonic()
        holder = record.holder_identity if record else ""
        if holder and holder != self._last_leader:
            self._last_leader = holder
            if self.on_new_leader is not None:
                try:
                    res = self.on_new_leader(holder)
                    if inspect.isawaitable(res):
                        task = asyncio.ensure_future(res)
                        self._background.add(task)
                        task.add_done_callback(self._background.discard)
                except Exception:
                    log.exception("on_new_leader callback failed")

    async def _write(self, action: Action, record: LeaseRecord, rv: str | None) -> bool:
        c = self.config
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": c.lease_name, "namespace": c.lease_namespace},
            "spec": record.to_spec(),
        }
        try:
            if action is Action.CREATE:
                out = await self._client.create(_RawLease(body))
            else:
                body["metadata"]["resourceVersion"] = rv
                out = await self._client.replace(_RawLease(body))
        except ApiError as exc:
            if exc.status.code == 409:  # someone else wrote first: optimistic concurrency lost
                log.debug("lease %s: conflict on %s", c.lease_name, action.value)
                return False
            raise
        self._observe(record, (out.get("metadata") or {}).get("resourceVersion"))
        return True

    async def try_acquire_or_renew(self) -> bool:
        """One round: read, decide, write. True if this replica holds the lease afterwards."""
        return (await self._round()) is _Outcome.LEADING

    async def _round(self) -> _Outcome:
        record, rv = await self._read()
        self._observe(record, rv)
        decision = decide(
            record,
            identity=self.identity,
            lease_duration=self.config.lease_duration,
            observed_at=self._observed_at,
            now=time.monotonic(),
            wall_now=dt.datetime.now(dt.UTC),
        )
        if decision.action is Action.WAIT or decision.record is None:
            return _Outcome.OTHER_HOLDS
        if await self._write(decision.action, decision.record, rv):
            if decision.action is not Action.RENEW:
                log.info("lease %s/%s acquired by %s", self.config.lease_namespace,
                         self.config.lease_name, self.identity)  # fmt: skip
            return _Outcome.LEADING
        return _Outcome.FAILED

    async def release(self) -> bool:
        """Give the lease up if we hold it (graceful shutdown). True if released."""
        try:
            record, rv = await self._read()
            if record is None or record.holder_identity != self.identity:
                return False
            ok = await self._write(Action.RENEW, released(record, dt.datetime.now(dt.UTC)), rv)
            if ok:
                log.info("lease %s/%s released by %s", self.config.lease_namespace,
                         self.config.lease_name, self.identity)  # fmt: skip
            return ok
        except Exception as exc:
            log.warning("lease release failed: %s", exc)
            return False

    async def acquire(self) -> None:
        """Block until this replica holds the lease."""
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except Exception as exc:
                log.warning("lease %s: acquire attempt failed: %s", self.config.lease_name, exc)
            await asyncio.sleep(self._sleep_time())

    async def _renew_until_lost(self) -> None:
        """Renew every retry period; return when leadership is lost."""
        c = self.config
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(c.retry_period)
            outcome = _Outcome.FAILED
            remaining = c.renew_deadline - (time.monotonic() - last_renew)
            try:
                async with asyncio.timeout(max(remaining, 0.05)):
                    outcome = await self._round()
            except TimeoutError:
                log.warning("lease %s: renew timed out", c.lease_name)
            except Exception as exc:
                log.warning("lease %s: renew failed: %s", c.lease_name, exc)
            if outcome is _Outcome.LEADING:
                last_renew = time.monotonic()
                continue
            if outcome is _Outcome.OTHER_HOLDS:
                log.error("lease %s: now held by %s", c.lease_name, self.observed_leader)
                return
            if time.monotonic() - last_renew >= c.renew_deadline:
                log.error("lease %s: could not renew within %.1fs", c.lease_name, c.renew_deadline)
                return

    async def _set_leading(self, leading: bool) -> None:
        if leading == self._leader:
            return
        self._leader = leading
        self._m_status.set(1 if leading else 0)
        cb = self.on_started_leading if leading else self.on_stopped_leading
        if cb is not None:
            try:
                await _maybe_await(cb())
            except Exception:
                log.exception("leader election callback failed")

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Acquire the lease, then run ``work()`` while holding it. See the class docstring."""
        await self.acquire()
        await self._set_leading(True)
        work_task: asyncio.Task[T] = asyncio.ensure_future(work())
        renew_task = asyncio.create_task(self._renew_until_lost(), name=f"lease-renew:{self.config.lease_name}")
        release = True
        try:
            await asyncio.wait({work_task, renew_task}, return_when=asyncio.FIRST_COMPLETED)
            if work_task.done():
                return work_task.result()
            release = False  # we no longer hold it
            raise LeadershipLost(f"lost lease {self.config.lease_namespace}/{self.config.lease_name}")
        except asyncio.CancelledError:
            release = self.config.release_on_cancel
            raise
        finally:
            for t in (renew_task, work_task):
                t.cancel()
            for t in (renew_task, work_task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            if release:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(max(self.config.retry_period, 2.0)):
                        await self.release()
            await self._set_leading(False)
