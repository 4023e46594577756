"""The peer: the original Go FusionInfer operator (kubebuilder, controller-runtime), to be built
from its Go module and benchmarked on the same work beside ours.

Only its module is allowed as a source (nothing of its code is copied into this repository), so
the first step is asking the Go module proxy for it. Where the proxy refuses (it does on this
project's machines: every version, the version list and commit queries answer "403 Forbidden:
This module version is not available"), the benchmark says so in its results and runs without
the peer; the probe is kept so that a machine whose proxy serves the module shows it at once.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

MODULE = "github.com/fusioninfer/fusioninfer"
# The revision the reference notes describe (the commit of its `cmd/main.go`); `latest` is asked
# too, since a proxy that serves the module may not serve one old commit.
REVISIONS = ("2363a95be2cac5c47f9a808a5d87453858b7fe4e", "latest")


@dataclass(frozen=True)
class PeerStatus:
    """Whether the peer's module could be fetched, and what the proxy said."""

    module: str
    available: bool
    version: str | None
    directory: str | None
    reason: str


def first_error_line(text: str) -> str:
    """The proxy's answer without the URL noise: `403 Forbidden: This module version is not
    available.` from go's multi-line error, else its last line."""
    flat = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    status = re.search(r"\b(\d{3} [A-Z][A-Za-z ]+?)\s+server response:\s*(.*)$", flat)
    if status:
        return f"{status.group(1)}: {status.group(2).strip()}"
    return flat.rsplit(": ", 1)[-1] if flat else "no answer"


def probe(revisions: tuple[str, ...] = REVISIONS, timeout: float = 120.0) -> PeerStatus:
    """`go mod download -json MODULE@REV` for each revision until one is served."""
    reasons: list[str] = []
    for revision in revisions:
        try:
            proc = subprocess.run(
                ["go", "mod", "download", "-json", f"{MODULE}@{revision}"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{revision}: {exc}")
            continue
        try:
            info = json.loads(proc.stdout or "{}")
        except json.JSONDecodeError:
            info = {}
        if proc.returncode == 0 and info.get("Dir"):
            return PeerStatus(MODULE, True, str(info.get("Version")), str(info["Dir"]), "served")
        reasons.append(f"{revision}: {first_error_line(str(info.get('Error') or proc.stderr))}")
    return PeerStatus(MODULE, False, None, None, "; ".join(reasons))
