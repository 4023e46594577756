"""Our own writes' echoes are recognised exactly: the version a write returned, once, for that
object only, whether the echo arrives before or after the write's response. A false echo would
be a change nobody reconciles (a user's edit lost until the next resync); a missed one costs a
reconcile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusioninfer.controller.echoes import OwnWrites


def obj(name: str, version: str | None = None, *, kind: str = "Deployment", namespace: str = "ns") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if version is not None:
        meta["resourceVersion"] = version
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta}


class Replays:
    """The enqueues the informer handlers would have done, counted."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def of(self, what: str) -> Any:
        return lambda: self.done.append(what)


def written(own: OwnWrites, name: str, version: str) -> None:
    own.expect(obj(name))
    own.record(obj(name), obj(name, version))


def test_the_version_a_write_returned_is_an_echo_once() -> None:
    own, replays = OwnWrites(), Replays()
    written(own, "a", "10")
    assert own.is_echo(obj("a", "10"), replays.of("a@10"))
    assert not own.is_echo(obj("a", "10"), replays.of("a@10 again")), "a second delivery is news"
    assert len(own) == 0
    assert replays.done == []


def test_another_version_or_object_is_news() -> None:
    own, replays = OwnWrites(), Replays()
    written(own, "a", "10")
    assert not own.is_echo(obj("a", "9"), replays.of("older")), "an older change somebody else made"
    assert not own.is_echo(obj("a", "11"), replays.of("later"))
    assert not own.is_echo(obj("b", "10"), replays.of("b"))
    assert not own.is_echo(obj("a", "10", kind="Service"), replays.of("svc"))
    assert not own.is_echo(obj("a", "10", namespace="other"), replays.of("other ns"))
    assert own.is_echo(obj("a", "10"), replays.of("echo")), "our echo is still awaited after news came first"


def test_an_echo_before_the_response_is_held_and_dropped() -> None:
    own, replays = OwnWrites(), Replays()
    own.expect(obj("a"))
    assert own.is_echo(obj("a", "10"), replays.of("echo")), "held back while the write is in flight"
    own.record(obj("a"), obj("a", "10"))
    assert replays.done == []
    assert not own.is_echo(obj("a", "10"), replays.of("again")), "consumed: not awaited any more"


def test_news_held_back_during_a_write_is_enqueued_when_it_returns() -> None:
    own, replays = OwnWrites(), Replays()
    own.expect(obj("a"))
    assert own.is_echo(obj("a", "9"), replays.of("somebody's change"))
    assert own.is_echo(obj("a", "10"), replays.of("echo"))
    own.record(obj("a"), obj("a", "10"))
    assert replays.done == ["somebody's change"]


def test_everything_held_back_for_a_failed_write_is_news() -> None:
    own, replays = OwnWrites(), Replays()
    own.expect(obj("a"))
    assert own.is_echo(obj("a", "9"), replays.of("change"))
    own.abandon(obj("a"))
    assert replays.done == ["change"]
    assert not own.is_echo(obj("a", "10"), replays.of("after"))
    assert len(own) == 0


def test_a_newer_write_replaces_the_older_one() -> None:
    own, replays = OwnWrites(), Replays()
    written(own, "a", "10")
    written(own, "a", "12")
    assert not own.is_echo(obj("a", "10"), replays.of("old"))
    assert own.is_echo(obj("a", "12"), replays.of("new"))


def test_objects_without_a_version_are_never_echoes() -> None:
    own, replays = OwnWrites(), Replays()
    own.expect(obj("a"))
    own.record(obj("a"), obj("a"))
    assert len(own) == 0
    assert not own.is_echo(obj("a"), replays.of("a"))


def test_the_oldest_versions_go_first_when_full() -> None:
    own, replays = OwnWrites(size=2), Replays()
    for name in ("a", "b", "c"):
        written(own, name, "1")
    assert len(own) == 2
    assert not own.is_echo(obj("a", "1"), replays.of("a"))
    assert own.is_echo(obj("b", "1"), replays.of("b"))
    assert own.is_echo(obj("c", "1"), replays.of("c"))
    with pytest.raises(ValueError, match="at least 1"):
        OwnWrites(size=0)


@given(
    writes=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5)), max_size=12),
    seen=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5)), max_size=12),
)
def test_only_the_last_written_version_of_each_object_is_an_echo(
    writes: list[tuple[str, int]], seen: list[tuple[str, int]]
) -> None:
    own, replays = OwnWrites(), Replays()
    last: dict[str, int] = {}
    for name, version in writes:
        written(own, name, str(version))
        last[name] = version
    for name, version in seen:
        expected = last.get(name) == version
        assert own.is_echo(obj(name, str(version)), replays.of(name)) == expected
        if expected:
            del last[name]
    assert replays.done == [], "nothing is held back once the writes returned"


@given(
    events=st.lists(st.sampled_from(["9", "10", "11"]), max_size=6),
    returned=st.sampled_from(["10", None]),
)
def test_during_a_write_every_event_but_one_echo_is_enqueued_in_the_end(
    events: list[str], returned: str | None
) -> None:
    """Whatever arrives while the write is in flight: the echo (at most once) is dropped, the
    rest is enqueued when the write returns or fails; nothing is lost, nothing is held forever."""
    own, replays = OwnWrites(), Replays()
    own.expect(obj("a"))
    for version in events:
        assert own.is_echo(obj("a", version), replays.of(version))
    if returned is None:
        own.abandon(obj("a"))
        assert sorted(replays.done) == sorted(events)
    else:
        own.record(obj("a"), obj("a", returned))
        expected = list(events)
        if returned in expected:
            expected.remove(returned)
        assert sorted(replays.done) == sorted(expected)
    assert not own._in_flight
