"""Leader election: the pure decision logic (no cluster)."""

from __future__ import annotations

import datetime as dt

import pytest

from fusioninfer.runtime.leader import LeaderElectionConfig
from fusioninfer.runtime.lease import Action, LeaseRecord, decide, format_micro_time, is_expired, parse_time, released

WALL = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def held_by(holder: str, transitions: int = 3, duration: int = 15) -> LeaseRecord:
    earlier = WALL - dt.timedelta(seconds=30)
    return LeaseRecord(holder, duration, acquire_time=earlier, renew_time=earlier, lease_transitions=transitions)


def test_no_lease_means_create() -> None:
    d = decide(None, identity="me", lease_duration=15, observed_at=0, now=0, wall_now=WALL)
    assert d.action is Action.CREATE
    assert d.record == LeaseRecord("me", 15, WALL, WALL, 0)


def test_valid_lease_of_another_means_wait() -> None:
    d = decide(held_by("other"), identity="me", lease_duration=15, observed_at=100, now=114.9, wall_now=WALL)
    assert d.action is Action.WAIT
    assert d.record is None


def test_expired_lease_is_taken_over_with_a_transition() -> None:
    d = decide(held_by("other", 3), identity="me", lease_duration=15, observed_at=100, now=115.0, wall_now=WALL)
    assert d.action is Action.ACQUIRE
    assert d.record == LeaseRecord("me", 15, WALL, WALL, 4)


def test_expiry_uses_the_records_duration_over_ours() -> None:
    rec = held_by("other", duration=60)
    assert decide(rec, identity="me", lease_duration=15, observed_at=0, now=30, wall_now=WALL).action is Action.WAIT
    assert decide(rec, identity="me", lease_duration=15, observed_at=0, now=60, wall_now=WALL).action is Action.ACQUIRE


def test_expiry_ignores_the_remote_clock() -> None:
    """A renewTime far in the past (remote clock skew) must not let us steal a lease that we have
    only just seen change: expiry is measured on our monotonic clock from the observation."""
    ancient = LeaseRecord("other", 15, renew_time=WALL - dt.timedelta(days=1), lease_transitions=1)
    d = decide(ancient, identity="me", lease_duration=15, observed_at=500, now=501, wall_now=WALL)
    assert d.action is Action.WAIT


def test_released_lease_is_taken_at_once() -> None:
    rel = released(held_by("other", 7), WALL)
    assert rel.holder_identity == ""
    assert rel.lease_duration_seconds == 1
    assert rel.lease_transitions == 7
    d = decide(rel, identity="me", lease_duration=15, observed_at=100, now=100, wall_now=WALL)
    assert d.action is Action.ACQUIRE
    assert d.record is not None
    assert d.record.lease_transitions == 8


def test_own_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    mine = held_by("me", 5)
    d = decide(mine, identity="me", lease_duration=15, observed_at=0, now=10_000, wall_now=WALL)
    assert d.action is Action.RENEW
    assert d.record is not None
    assert d.record.renew_time == WALL
    assert d.record.acquire_time == mine.acquire_time
    assert d.record.lease_transitions == 5


def test_fractional_durations_round_to_whole_seconds() -> None:
    d = decide(None, identity="me", lease_duration=0.4, observed_at=0, now=0, wall_now=WALL)
    assert d.record is not None
    assert d.record.lease_duration_seconds == 1


def test_is_expired_boundary() -> None:
    rec = LeaseRecord("x", 10)
    assert not is_expired(rec, observed_at=5, now=14.99, default_duration=99)
    assert is_expired(rec, observed_at=5, now=15, default_duration=99)
    assert is_expired(LeaseRecord("x", 0), observed_at=5, now=8, default_duration=3)


def test_record_round_trips_through_the_lease_spec() -> None:
    rec = LeaseRecord("me", 15, WALL, WALL, 2)
    spec = rec.to_spec()
    assert spec == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "leaseTransitions": 2,
        "acquireTime": "2024-05-01T12:00:00.123456Z",
        "renewTime": "2024-05-01T12:00:00.123456Z",
    }
    assert LeaseRecord.from_spec(spec) == rec
    assert "holderIdentity" not in LeaseRecord("", 1).to_spec()
    assert LeaseRecord.from_spec(None) == LeaseRecord("", 0)


def test_time_helpers() -> None:
    assert parse_time("2024-05-01T12:00:00Z") == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    assert parse_time("garbage") is None
    assert parse_time(None) is None
    assert format_micro_time(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2024-01-02T03:04:05.000000Z"


def test_config_validates_timings() -> None:
    LeaderElectionConfig("l", "ns")  # client-go defaults 15/10/2 are valid
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElectionConfig("l", "ns", lease_duration=5, renew_deadline=10)
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElectionConfig("l", "ns", lease_duration=15, renew_deadline=2, retry_period=2)


def test_identities_are_unique() -> None:
    assert LeaderElectionConfig("l", "ns").identity != LeaderElectionConfig("l", "ns").identity
