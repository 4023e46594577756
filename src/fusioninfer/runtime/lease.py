"""The pure half of leader election: the Lease record, and what a replica should do with the one
it just read (`decide`), or write when it gives the lease up (`released`).

No I/O and no clock of its own (the caller passes the monotonic and the wall time), so every
rule of client-go's leaderelection that decides who leads, including the ones about clock skew
and expiry, is unit-tested without a cluster. `runtime.leader` does the reading and writing.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace
from typing import Any


def format_micro_time(t: dt.datetime) -> str:
    """RFC 3339 with microseconds, as Kubernetes' MicroTime."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease that leader election reads and writes (its ``spec``)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 15
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    lease_transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder_identity=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_time(spec.get("acquireTime")),
            renew_time=parse_time(spec.get("renewTime")),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder_identity or None,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.lease_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        return {k: v for k, v in spec.items() if v is not None}


class Action(enum.Enum):
    CREATE = "create"  # no Lease object yet
    ACQUIRE = "acquire"  # free, released or expired: take it over
    RENEW = "renew"  # ours: refresh renewTime
    WAIT = "wait"  # someone else holds a valid lease


@dataclass(frozen=True)
class Decision:
    action: Action
    record: LeaseRecord | None = None  # what to write (None for WAIT)


def is_expired(record: LeaseRecord, observed_at: float, now: float, default_duration: float) -> bool:
    """Has `record` gone unchanged for its lease duration (measured on the local monotonic clock)?"""
    duration = record.lease_duration_seconds or default_duration
    return now >= observed_at + duration


def decide(
    current: LeaseRecord | None,
    *,
    identity: str,
    lease_duration: float,
    observed_at: float,
    now: float,
    wall_now: dt.datetime,
) -> Decision:
    """What `identity` should do with the lease it just read (`current`; None = no Lease object).

    `observed_at` is the monotonic time at which `current` was first seen in its present form;
    `now` the monotonic time now; `wall_now` goes into acquire/renew timestamps.
    """
    seconds = max(1, round(lease_duration))
    if current is None:
        return Decision(
            Action.CREATE,
            LeaseRecord(identity, seconds, acquire_time=wall_now, renew_time=wall_now, lease_transitions=0),
        )
    if current.holder_identity == identity:
        return Decision(
            Action.RENEW,
            replace(current, lease_duration_seconds=seconds, renew_time=wall_now,
                    acquire_time=current.acquire_time or wall_now),
        )  # fmt: skip
    if current.holder_identity and not is_expired(current, observed_at, now, lease_duration):
        return Decision(Action.WAIT)
    return Decision(
        Action.ACQUIRE,
        LeaseRecord(
            identity,
            seconds,
            acquire_time=wall_now,
            renew_time=wall_now,
            lease_transitions=current.lease_transitions + 1,
        ),
    )


def released(record: LeaseRecord, wall_now: dt.datetime) -> LeaseRecord:
    """The record a leader writes on graceful shutdown (client-go's release)."""
    return LeaseRecord(
        holder_identity="",
        lease_duration_seconds=1,
        acquire_time=wall_now,
        renew_time=wall_now,
        lease_transitions=record.lease_transitions,
    )
