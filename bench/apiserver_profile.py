"""A CPU profile of the kube-apiserver over a run's convergence (`--profile-apiserver DIR`).

Why: with the operator making exactly the lower bound's writes, what is left of the gap is the
apiserver's (and etcd's) extra CPU on the operator's side. Its own profiler says where that
goes: the Go runtime's sampling profiler behind ``/debug/pprof/profile?seconds=S`` (on in the
benchmark's cluster only when asked: `start_cluster(profiling=True)`). A profile's length is
fixed when it starts, so each side's first run gets the same `seconds` from its clock start;
choose them to cover the slower side's convergence. ``go tool pprof -top`` turns each into the
text next to it (the profile carries its symbols: no binary needed)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.kube import ApiHttp
from bench.results import log
from bench.setup import Bench


async def _capture(bench: Bench, target: Path, seconds: int) -> None:
    api = ApiHttp(bench.cluster.server, bench.cluster.admin_token)
    try:
        resp = await api.get("/debug/pprof/profile", params={"seconds": seconds})
    finally:
        await api.close()
    log(await asyncio.to_thread(_save, target, resp.content))


def _save(target: Path, profile: bytes) -> str:
    """Write the profile and its ``go tool pprof -top`` text; say where they are."""
    target.write_bytes(profile)
    go = shutil.which("go")
    if go is None:
        return f"  apiserver CPU profile in {target} (no `go` on PATH for its -top summary)"
    top = target.with_name(target.name.removesuffix(".pb.gz") + ".top.txt")
    proc = subprocess.run(
        [go, "tool", "pprof", "-top", "-nodecount=60", str(target)], capture_output=True, text=True, check=False
    )
    top.write_text(proc.stdout + proc.stderr)
    return f"  apiserver CPU profile in {target}, its top functions in {top}"


@dataclass(frozen=True)
class ApiserverProfile:
    """Where one run's profile goes (`directory`/`name`.pb.gz) and how long it samples."""

    directory: Path
    name: str
    seconds: int


def start_profile(bench: Bench, profile: ApiserverProfile | None) -> asyncio.Task[None] | None:
    """Start sampling now (nothing without a `profile`). Await the task after the run: it ends
    once the profile has been written."""
    if profile is None:
        return None
    profile.directory.mkdir(parents=True, exist_ok=True)
    return asyncio.create_task(_capture(bench, profile.directory / f"{profile.name}.pb.gz", profile.seconds))
