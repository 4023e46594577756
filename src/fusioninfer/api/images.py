"""Versions read from image tags: what an engine, picker or sidecar image will accept.

Rendered flags and configs depend on the release they run on (a picker's config shape, a
sidecar's flag names, an engine's multi-node flags); the tag is the only place the spec says it.
"""

from __future__ import annotations

import re

_TAG_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def image_version(image: str | None) -> tuple[int, int, int] | None:
    """`ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1` -> (0, 7, 1); None for a digest, `latest`
    or no tag (callers then assume the current release)."""
    if not image or "@" in image:
        return None
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    match = _TAG_VERSION.match(tag)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)
