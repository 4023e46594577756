"""Our own writes' echoes are recognised exactly: the version a write returned, once, for that
object only. A false echo would be a change nobody reconciles (a user's edit lost until the next
resync); a missed one costs a reconcile."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusioninfer.controller.echoes import OwnWrites


def obj(name: str, version: str | None, *, kind: str = "Deployment", namespace: str = "ns") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if version is not None:
        meta["resourceVersion"] = version
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta}


def test_the_version_a_write_returned_is_an_echo_once() -> None:
    own = OwnWrites()
    own.record(obj("a", "10"))
    assert own.is_echo(obj("a", "10"))
    assert not own.is_echo(obj("a", "10")), "a second delivery (a relist) is not ours to swallow twice"
    assert len(own) == 0


def test_another_version_or_object_is_news() -> None:
    own = OwnWrites()
    own.record(obj("a", "10"))
    assert not own.is_echo(obj("a", "9")), "an older change somebody else made, delivered first"
    assert not own.is_echo(obj("a", "11")), "a later change"
    assert not own.is_echo(obj("b", "10"))
    assert not own.is_echo(obj("a", "10", kind="Service"))
    assert not own.is_echo(obj("a", "10", namespace="other"))
    assert own.is_echo(obj("a", "10")), "our echo is still awaited after news came first"


def test_a_newer_write_replaces_the_older_one() -> None:
    own = OwnWrites()
    own.record(obj("a", "10"))
    own.record(obj("a", "12"))
    assert not own.is_echo(obj("a", "10"))
    assert own.is_echo(obj("a", "12"))


def test_objects_without_a_version_are_never_echoes() -> None:
    own = OwnWrites()
    own.record(obj("a", None))
    assert len(own) == 0
    assert not own.is_echo(obj("a", None))


def test_the_oldest_versions_go_first_when_full() -> None:
    own = OwnWrites(size=2)
    for name in ("a", "b", "c"):
        own.record(obj(name, "1"))
    assert len(own) == 2
    assert not own.is_echo(obj("a", "1"))
    assert own.is_echo(obj("b", "1"))
    assert own.is_echo(obj("c", "1"))
    with pytest.raises(ValueError, match="at least 1"):
        OwnWrites(size=0)


@given(
    writes=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5)), max_size=12),
    seen=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5)), max_size=12),
)
def test_only_the_last_written_version_of_each_object_is_an_echo(
    writes: list[tuple[str, int]], seen: list[tuple[str, int]]
) -> None:
    own = OwnWrites()
    last: dict[str, int] = {}
    for name, version in writes:
        own.record(obj(name, str(version)))
        last[name] = version
    for name, version in seen:
        expected = last.get(name) == version
        assert own.is_echo(obj(name, str(version))) == expected
        if expected:
            del last[name]
