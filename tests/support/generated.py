"""Checked-in generated files (CRD, API reference) must equal what the code generates now."""

from __future__ import annotations

import difflib

import pytest


def assert_up_to_date(what: str, path: str, current: str, generated: str, regenerate: str) -> None:
    """Fail with a unified diff and the command that regenerates `path` when they differ."""
    if current == generated:
        return
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            fromfile=f"{path} (checked in)",
            tofile="generated from src/fusioninfer/api/v1alpha1.py",
        )
    )
    pytest.fail(f"the checked-in {what} is stale; run `{regenerate}` and commit it.\n{diff}")
