"""The test tree's own rules, so that a new file cannot break collection in CI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    # The test directories are not packages: pytest imports each module by its basename, and two
    # files with the same name in different directories abort the whole run ("import file mismatch").
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
