"""Writes the benchmark's results into docs/benchmarks.md (between markers) and docs/benchmarks.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def write_docs(payload: dict[str, Any], table: str, docs: Path) -> None:
    raise NotImplementedError
