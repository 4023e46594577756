"""Low-level observation helpers for the benchmark, independent of the operator's own code:
plain HTTP to the apiserver (metadata-only list/watch, ``/metrics``), the apiserver's audit log
(who wrote what, and when), and ``/proc`` (peak RSS, CPU time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.cluster import LocalCluster

META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
META_ITEM = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# The apiserver answers 429 "storage is (re)initializing" for a moment after a CRD is installed,
# and 429/503 under load, each with Retry-After: wait and ask again rather than fail the run.
RETRYABLE_STATUS = frozenset({429, 503})
RETRY_FOR_SECONDS = 30.0
READ_VERBS = frozenset({"GET", "LIST", "WATCH", "WATCHLIST", "CONNECT", "PROXY"})
WRITE_AUDIT_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """``/api/v1/namespaces/ns/pods`` or ``/apis/apps/v1/namespaces/ns/deployments``."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"


class ApiHttp:
    """A bare httpx client on the apiserver as the admin (TLS verification off: loopback,
    self-signed)."""

    def __init__(self, server: str, token: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=server,
            verify=False,
            trust_env=False,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, read=None),
            limits=httpx.Limits(max_connections=50),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET `path`, retrying the answers the apiserver means to be retried (see above)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_FOR_SECONDS
        while True:
            resp = await self.http.get(path, **kwargs)
            if resp.status_code not in RETRYABLE_STATUS or loop.time() > deadline:
                resp.raise_for_status()
                return resp
            retry_after = resp.headers.get("Retry-After", "")
            await asyncio.sleep(min(float(retry_after), 1.0) if retry_after.isdigit() else 0.2)

    async def list_meta(self, path: str, labels: str | None = None) -> tuple[list[Obj], str]:
        """Metadata of every object in a collection (paginated), and the list's resourceVersion."""
        items: list[Obj] = []
        cont: str | None = None
        while True:
            params: dict[str, str] = {"limit": "500"}
            if labels:
                params["labelSelector"] = labels
            if cont:
                params["continue"] = cont
            resp = await self.get(path, params=params, headers={"Accept": META_LIST})
            body = resp.json()
            items.extend(body.get("items") or [])
            cont = (body.get("metadata") or {}).get("continue")
            if not cont:
                return items, str(body["metadata"]["resourceVersion"])

    async def watch(
        self,
        path: str,
        resource_version: str,
        on_event: Callable[[str, Obj], None],
        *,
        labels: str | None = None,
        fields: str | None = None,
        metadata_only: bool = True,
    ) -> None:
        """Watch a collection from `resource_version` until cancelled, calling
        ``on_event(type, object)`` for each event; reconnects from the last seen version."""
        rv = resource_version
        while True:
            params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "3600", "allowWatchBookmarks": "true"}
            if labels:
                params["labelSelector"] = labels
            if fields:
                params["fieldSelector"] = fields
            headers = {"Accept": META_ITEM} if metadata_only else {}
            try:
                async with self.http.stream("GET", path, params=params, headers=headers) as resp:
                    resp.raise_for_status()
                    async for line in resp.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            on_event(str(event["type"]), obj)
            except (httpx.HTTPError, json.JSONDecodeError):
                await asyncio.sleep(0.2)

    async def metrics(self) -> str:
        resp = await self.get("/metrics")
        return resp.text


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


def audit_policy(users: list[str]) -> Obj:
    """Record (at Metadata level) every write request by `users`; nothing else."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "Metadata", "users": users, "verbs": list(WRITE_AUDIT_VERBS)},
            {"level": "None"},
        ],
    }


@dataclass(frozen=True)
class Write:
    """One audited write request."""

    user: str
    verb: str
    resource: str
    subresource: str
    name: str
    code: int
    at: float = 0.0  # when the apiserver finished it (stageTimestamp), seconds since the epoch

    @property
    def what(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{self.verb} {res}"


def _epoch(stamp: object) -> float:
    """An audit event's RFC 3339 timestamp (microseconds, "Z") as seconds since the epoch."""
    if not isinstance(stamp, str):
        return 0.0
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def parse_write(raw: bytes) -> Write | None:
    """One line of the audit log as a `Write`; None for a partial line or another stage."""
    try:
        event = json.loads(raw)
    except json.JSONDecodeError:
        return None  # a line being written right now
    if event.get("stage") != "ResponseComplete":
        return None
    ref = event.get("objectRef") or {}
    return Write(
        user=str((event.get("user") or {}).get("username", "")),
        verb=str(event.get("verb", "")),
        resource=str(ref.get("resource", "")),
        subresource=str(ref.get("subresource", "")),
        name=str(ref.get("name", "")),
        code=int((event.get("responseStatus") or {}).get("code", 0)),
        at=_epoch(event.get("stageTimestamp")),
    )


@dataclass
class AuditLog:
    """The apiserver's JSON audit log (one event per line)."""

    path: Path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def writes(self, start: int, end: int | None = None, user: str | None = None) -> list[Write]:
        """Writes recorded between byte offsets `start` and `end` (default: now), by `user`."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(start)
                data = fh.read() if end is None else fh.read(max(0, end - start))
        except FileNotFoundError:
            return []
        parsed = (parse_write(raw) for raw in data.splitlines())
        return [w for w in parsed if w is not None and (user is None or w.user == user)]


@dataclass
class AuditTail:
    """The audit log read as it grows, from byte `offset` on, whole lines only: how the
    benchmark follows the operator's writes without a watch of its own on the apiserver."""

    log: AuditLog
    offset: int
    _partial: bytes = field(default=b"", repr=False)

    def new_lines(self) -> list[bytes]:
        try:
            with self.log.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return lines


def summarize(writes: list[Write]) -> dict[str, int]:
    """Writes counted per ``verb resource[/subresource]``, most frequent first."""
    counts: dict[str, int] = {}
    for w in writes:
        counts[w.what] = counts.get(w.what, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------


def proc_status(pid: int) -> Mapping[str, int]:
    """VmHWM / VmRSS (bytes) of a live process."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


CONTROL_PLANE_CPU = ("kube-apiserver", "etcd")


def control_plane_cpu(spent: Mapping[str, float]) -> float:
    """The kube-apiserver's and etcd's share of a `cpu_delta`: what both sides of the benchmark
    share, and what each side's requests and watches cost the server."""
    return sum(spent.get(name, 0.0) for name in CONTROL_PLANE_CPU)


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent not idle (``/proc/stat``), so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(cluster: LocalCluster, **others: int) -> dict[str, float]:
    """CPU seconds so far of every cluster process, of `others` (name=pid), of this process
    ("bench") and of the whole machine ("machine"): subtract two snapshots to see who was
    busy while a phase ran, and whether the machine's cores were the limit."""
    pids = {name: record.pid for name, record in cluster.processes().items()} | others | {"bench": os.getpid()}
    snap: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            snap[name] = cpu_seconds(pid)
    snap["machine"] = machine_busy_seconds()
    return snap


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Seconds per process between two `cpu_snapshot`s, largest first (the machine last)."""
    spent = {k: after[k] - before[k] for k in after if k in before and k != "machine"}
    ordered = dict(sorted(spent.items(), key=lambda kv: -kv[1]))
    ordered["machine"] = after["machine"] - before["machine"]
    return ordered


def cpu_text(spent: Mapping[str, float]) -> str:
    """A `cpu_delta` for the progress log, to a tenth of a second (the figures stay unrounded)."""
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in spent.items())


async def wait_pods(api: ApiHttp, namespace: str, expected: int, wait: float) -> bool:
    """Wait until the controller-manager has created `expected` Pods in `namespace`."""
    deadline = time.monotonic() + wait
    path = collection_path("v1", "pods", namespace)
    while time.monotonic() < deadline:
        items, _ = await api.list_meta(path)
        if len(items) >= expected:
            return True
        await asyncio.sleep(2.0)
    return False
