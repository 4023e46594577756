"""Unit tests of `tests.support.eventually`: it retries only what it should, returns the value,
and explains a timeout."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # `tests.support` without `python -m pytest`

from tests.support.eventually import EventuallyTimeout, eventually, eventually_async


def test_returns_the_first_truthy_value_after_retrying_assertions() -> None:
    calls = {"n": 0}

    def check() -> str | None:
        calls["n"] += 1
        assert calls["n"] >= 3, f"only {calls['n']} calls"
        return "done"

    assert eventually(check, timeout=5, interval=0.001) == "done"
    assert calls["n"] == 3


def test_falsy_values_are_retried() -> None:
    values: Iterator[object] = iter([0, [], None, {"ok": True}])
    assert eventually(lambda: next(values), timeout=5, interval=0.001) == {"ok": True}


def test_timeout_reports_the_last_assertion() -> None:
    def never() -> bool:
        raise AssertionError("replicas 1 != 3")

    started = time.monotonic()
    with pytest.raises(EventuallyTimeout, match=r"replicas 1 != 3") as err:
        eventually(never, timeout=0.2, interval=0.01, message="deployment ready")
    assert time.monotonic() - started < 2
    assert "deployment ready" in str(err.value)
    assert isinstance(err.value.__cause__, AssertionError)
    assert isinstance(err.value, AssertionError), "pytest shows it as a test failure"


def test_timeout_reports_the_last_falsy_value() -> None:
    with pytest.raises(EventuallyTimeout, match=r"last value: \[\]"):
        eventually(list, timeout=0.05, interval=0.01)


def test_other_exceptions_propagate_at_once_unless_retryable() -> None:
    calls = {"n": 0}

    def broken() -> bool:
        calls["n"] += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        eventually(broken, timeout=5)
    assert calls["n"] == 1

    attempts = iter([KeyError("transient"), None])

    def flaky() -> bool:
        exc = next(attempts)
        if exc:
            raise exc
        return True

    assert eventually(flaky, timeout=5, interval=0.001, retry_on=(KeyError,)) is True


async def test_async_flavour_accepts_coroutines_and_plain_functions() -> None:
    calls = {"n": 0}

    async def check() -> int:
        calls["n"] += 1
        assert calls["n"] > 2
        return calls["n"]

    assert await eventually_async(check, timeout=5, interval=0.001) == 3
    assert await eventually_async(lambda: "plain", timeout=1) == "plain"
    with pytest.raises(EventuallyTimeout, match=r"did not succeed within 0\.05s"):
        await eventually_async(lambda: False, timeout=0.05, interval=0.01)


def test_a_function_declared_to_return_none_is_an_assertion_block() -> None:
    calls = {"n": 0}

    def check() -> None:
        calls["n"] += 1
        assert calls["n"] >= 2

    eventually(check, timeout=5, interval=0.001)
    assert calls["n"] == 2


def test_an_undeclared_none_still_means_not_yet() -> None:
    values = iter([None, None, "found"])
    assert eventually(lambda: next(values), timeout=5, interval=0.001) == "found"

    def maybe() -> str | None:
        return None

    with pytest.raises(EventuallyTimeout, match="last value: None"):
        eventually(maybe, timeout=0.05, interval=0.01)


async def test_async_assertion_block() -> None:
    calls = {"n": 0}

    async def check() -> None:
        calls["n"] += 1
        assert calls["n"] >= 3

    await eventually_async(check, timeout=5, interval=0.001)
    assert calls["n"] == 3
