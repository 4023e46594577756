"""Reading multi-document YAML (``---``-separated manifests) the one way every caller needs.

Every reader of manifests wants the same thing: the documents in order, without the empty ones
that a leading or trailing ``---`` (or a document of only comments) produces as ``None``. The
loader is always a safe one: manifests are data, and a ``!!python`` tag must never run code.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

# PyYAML's C loader where libyaml is installed: the same documents, parsed several times faster
# (for large files such as upstream CRDs). Error messages differ slightly, so it is opt-in.
FAST_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_all(
    stream: str | bytes | IO[str] | IO[bytes], *, loader: type[yaml.SafeLoader] = yaml.SafeLoader
) -> list[Any]:
    """Every non-empty document of `stream`, in order. Raises `yaml.YAMLError` on malformed YAML.

    `loader` is `yaml.SafeLoader` or a subclass of it (one that refuses duplicate keys, say).
    """
    return [doc for doc in yaml.load_all(stream, Loader=loader) if doc is not None]
