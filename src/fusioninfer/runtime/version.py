"""The apiserver's version, read from `/version` (lightkube has no call for it)."""

from __future__ import annotations

import logging
import re
from typing import Any

from lightkube import AsyncClient, Client

log = logging.getLogger(__name__)


def parse_server_version(data: Any) -> tuple[int, int] | None:
    """{"major": "1", "minor": "20+"} -> (1, 20); None when it cannot be read."""
    if not isinstance(data, dict):
        return None
    try:
        major = int(re.sub(r"\D", "", str(data.get("major", ""))) or 0)
        minor = int(re.sub(r"\D", "", str(data.get("minor", ""))) or 0)
    except ValueError:
        return None
    return (major, minor) if major else None


async def fetch_server_version(client: AsyncClient) -> tuple[int, int] | None:
    try:
        response = await client._client._client.get("/version")
        return parse_server_version(response.json())
    except Exception as exc:  # the version only tunes fallbacks: never fatal
        log.warning("could not read the apiserver version: %s", exc)
        return None


def server_version(client: Client) -> tuple[int, int] | None:
    try:
        return parse_server_version(client._client._client.get("/version").json())
    except Exception as exc:
        log.warning("could not read the apiserver version: %s", exc)
        return None
