"""Shared fixtures for the runtime unit tests."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from fusioninfer.runtime.metrics import RuntimeMetrics


@pytest.fixture
def metrics() -> RuntimeMetrics:
    """A metrics bundle on its own registry, so tests neither clash nor see each other's samples."""
    return RuntimeMetrics(CollectorRegistry())


class FakeClock:
    """A manual monotonic clock for rate limiters and queue metrics."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
