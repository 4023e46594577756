"""Gateway API durations (`1h30m`, `500ms`, `300s`): what the HTTPRoute CRD accepts, in numbers.

Needed where the CRD's CEL rules compare durations (a rule's `backendRequest` timeout may not be
longer than its `request` timeout), so that validation and the builder agree with the server.
"""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


def duration_ms(value: Any) -> int | None:
    """`value` in milliseconds, or None when it is not a Gateway API duration (at most four
    number-unit parts, each number at most five digits)."""
    text = str(value)
    parts = _PART.findall(text)
    if not parts or len(parts) > 4 or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNIT_MS[u] for n, u in parts)
