"""Fake LeaderWorkerSet controller (`leaderworkerset.x-k8s.io/v1`, as LWS v0.7.0 behaves).

Per LWS and group index `i < spec.replicas` it keeps a group of `leaderWorkerTemplate.size` Pods:
the leader `<lws>-<i>` from `leaderTemplate` (or `workerTemplate` when absent) and the workers
`<lws>-<i>-<j>` (j = 1..size-1) from `workerTemplate`, with what LWS's controller and pod webhook
add: the labels `leaderworkerset.sigs.k8s.io/name`, `/group-index`, `/worker-index` (`"0"` on the
leader), `/group-key` (sha1 of `<namespace>/<leader pod>`), `/template-revision-hash`; the
annotations `/size` and (workers) `/leader-name`; `hostname`/`subdomain` so that
`<leader>.<lws>.<namespace>` resolves through the headless Service `<lws>` it also creates; and
the env vars `LWS_LEADER_ADDRESS`, `LWS_GROUP_SIZE`, `LWS_WORKER_INDEX` prepended to every
container, so `$(LWS_LEADER_ADDRESS)` in args expands as on a real cluster.

Behaviour: scale up/down creates/deletes whole groups; a template change (a new revision hash)
recreates groups from the highest index down, never below `rollingUpdateConfiguration.partition`,
with at most `maxUnavailable` ready groups down at a time; under `restartPolicy:
RecreateGroupOnPodRestart` (the default) a group with a failed, restarted or deleted Pod is
recreated as a whole (at most once per `RECREATE_BACKOFF` s, standing in for the kubelet's crash
back-off); `startupPolicy: LeaderReady` creates workers only once the leader is Ready. Status
(`/status` subresource): `replicas` (groups with a leader), `readyReplicas` (groups whose every
Pod is Ready), `updatedReplicas` (groups at the current revision), `hpaPodSelector`, and the
conditions `Available`, `Progressing` and `UpdateInProgress`.

Differences from the real controller, on purpose: it creates the Pods directly, all owned (as
controller) by the LWS, instead of a leader StatefulSet `<lws>` plus a worker StatefulSet per
group; so there are no StatefulSets to look at, and `maxSurge` is not modelled. Names, labels,
env, ordering and status are those of the real thing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType

from fusioninfer.localcluster.fakes.common import (
    Loop,
    Obj,
    condition,
    labels_of,
    list_all,
    merge_conditions,
    meta,
    now_rfc3339,
    owned_by,
)
from fusioninfer.runtime.kinds import raw_resource

log = logging.getLogger("fusioninfer.fakes.lws")

API_VERSION = "leaderworkerset.x-k8s.io/v1"
KIND = "LeaderWorkerSet"
FIELD_MANAGER = "fusioninfer-fake-lws"
PREFIX = "leaderworkerset.sigs.k8s.io/"
NAME_LABEL = PREFIX + "name"
GROUP_INDEX_LABEL = PREFIX + "group-index"
WORKER_INDEX_LABEL = PREFIX + "worker-index"
GROUP_KEY_LABEL = PREFIX + "group-key"
REVISION_LABEL = PREFIX + "template-revision-hash"
SIZE_ANNOTATION = PREFIX + "size"
LEADER_NAME_ANNOTATION = PREFIX + "leader-name"
RECREATE_BACKOFF = 5.0

LeaderWorkerSet = create_namespaced_resource("leaderworkerset.x-k8s.io", "v1", KIND, "leaderworkersets")


# --------------------------------------------------------------------------------------------
# Pure logic (unit-tested)
# --------------------------------------------------------------------------------------------


def leader_name(lws: str, group: int) -> str:
    return f"{lws}-{group}"


def worker_name(lws: str, group: int, index: int) -> str:
    return f"{lws}-{group}-{index}"


def group_pod_names(lws: str, group: int, size: int) -> list[str]:
    """Leader first, then workers 1..size-1."""
    return [leader_name(lws, group)] + [worker_name(lws, group, j) for j in range(1, size)]


def group_key(namespace: str, leader: str) -> str:
    """LWS's `group-key`: sha1 of `<namespace>/<leader pod name>`, hex."""
    return hashlib.sha1(f"{namespace}/{leader}".encode()).hexdigest()


def revision_hash(lws: Mapping[str, Any]) -> str:
    """Changes exactly when the group template does (what the real controller's revision tracks)."""
    spec = lws.get("spec") or {}
    material = {"t": spec.get("leaderWorkerTemplate") or {}, "n": spec.get("networkConfig") or {}}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:10]


def _spec(lws: Mapping[str, Any]) -> Obj:
    value = lws.get("spec")
    return value if isinstance(value, dict) else {}


def size_of(lws: Mapping[str, Any]) -> int:
    return max(1, int((_spec(lws).get("leaderWorkerTemplate") or {}).get("size") or 1))


def replicas_of(lws: Mapping[str, Any]) -> int:
    value = _spec(lws).get("replicas")
    return max(0, int(value if value is not None else 1))


def subdomain(lws: Mapping[str, Any], group: int) -> str:
    name = str(meta(lws)["name"])
    policy = (_spec(lws).get("networkConfig") or {}).get("subdomainPolicy") or "Shared"
    return leader_name(name, group) if policy == "UniquePerReplica" else name


def _env(name: str, value: str) -> Obj:
    return {"name": name, "value": value}


def _inject_env(container: Obj, env: Sequence[Obj]) -> None:
    present = {e.get("name") for e in container.get("env") or []}
    container["env"] = [e for e in env if e["name"] not in present] + list(container.get("env") or [])


def group_pod(lws: Mapping[str, Any], group: int, index: int) -> Obj:
    """The Pod LWS (controller + webhook) would run as member `index` of group `group`."""
    m = meta(lws)
    name, namespace = str(m["name"]), str(m["namespace"])
    lwt = _spec(lws).get("leaderWorkerTemplate") or {}
    template = lwt.get("workerTemplate") or {}
    if index == 0 and lwt.get("leaderTemplate"):
        template = lwt["leaderTemplate"]
    template = copy.deepcopy(template)
    size = size_of(lws)
    leader = leader_name(name, group)
    pod_name = leader if index == 0 else worker_name(name, group, index)
    labels = {
        **(template.get("metadata") or {}).get("labels", {}),
        NAME_LABEL: name,
        GROUP_INDEX_LABEL: str(group),
        WORKER_INDEX_LABEL: str(index),
        GROUP_KEY_LABEL: group_key(namespace, leader),
        REVISION_LABEL: revision_hash(lws),
    }
    annotations = {**(template.get("metadata") or {}).get("annotations", {}), SIZE_ANNOTATION: str(size)}
    if index > 0:
        annotations[LEADER_NAME_ANNOTATION] = leader
    spec = template.get("spec") or {}
    sub = subdomain(lws, group)
    spec["hostname"] = pod_name
    spec["subdomain"] = sub
    env = [
        _env("LWS_LEADER_ADDRESS", f"{leader}.{sub}.{namespace}"),
        _env("LWS_GROUP_SIZE", str(size)),
        _env("LWS_WORKER_INDEX", str(index)),
    ]
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            _inject_env(container, env)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": name,
                    "uid": m["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def headless_service(lws: Mapping[str, Any]) -> Obj:
    """The Service `<lws>` that gives group members stable DNS names (as LWS creates it)."""
    m = meta(lws)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": KIND, "name": m["name"], "uid": m["uid"], "controller": True}
            ],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {NAME_LABEL: m["name"]},
        },
    }


def pod_ready(pod: Mapping[str, Any]) -> bool:
    if meta(pod).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def pod_broken(pod: Mapping[str, Any]) -> bool:
    """Failed, or a container restarted: under RecreateGroupOnPodRestart the whole group goes."""
    status = pod.get("status") or {}
    restarted = any(int(c.get("restartCount") or 0) > 0 for c in status.get("containerStatuses") or [])
    return status.get("phase") == "Failed" or restarted


@dataclass(frozen=True)
class GroupState:
    index: int
    pods: dict[str, Obj]  # pod name -> pod (only the names this group should have)
    size: int
    revision: str

    @property
    def complete(self) -> bool:
        return len(self.pods) == self.size

    @property
    def ready(self) -> bool:
        return self.complete and all(pod_ready(p) for p in self.pods.values())

    @property
    def updated(self) -> bool:
        return bool(self.pods) and all(labels_of(p).get(REVISION_LABEL) == self.revision for p in self.pods.values())

    @property
    def has_leader(self) -> bool:
        return any(labels_of(p).get(WORKER_INDEX_LABEL) == "0" for p in self.pods.values())


def groups_of(lws: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> dict[int, GroupState]:
    """The LWS's Pods grouped by index (every index seen, including ones beyond `replicas`)."""
    name = str(meta(lws)["name"])
    size, revision = size_of(lws), revision_hash(lws)
    found: dict[int, dict[str, Obj]] = {}
    for pod in pods:
        labels = labels_of(pod)
        try:
            index = int(labels.get(GROUP_INDEX_LABEL, ""))
        except ValueError:
            continue
        if labels.get(NAME_LABEL) == name:
            found.setdefault(index, {})[str(meta(pod)["name"])] = dict(pod)
    out = {}
    for index, members in found.items():
        wanted = set(group_pod_names(name, index, size))
        out[index] = GroupState(index, {n: p for n, p in members.items() if n in wanted}, size, revision)
    return out


def max_unavailable(lws: Mapping[str, Any]) -> int:
    """`rollingUpdateConfiguration.maxUnavailable` as a group count (percentages round down);
    at least 1, as LWS forces when both surge and unavailable come out 0."""
    config = ((_spec(lws).get("rolloutStrategy") or {}).get("rollingUpdateConfiguration")) or {}
    raw = config.get("maxUnavailable", 1)
    replicas = replicas_of(lws)
    percent = isinstance(raw, str) and raw.endswith("%")
    value = int(replicas * int(str(raw)[:-1]) / 100) if percent else int(raw)
    return max(1, value)


def partition_of(lws: Mapping[str, Any]) -> int:
    config = ((_spec(lws).get("rolloutStrategy") or {}).get("rollingUpdateConfiguration")) or {}
    return int(config.get("partition") or 0)


def groups_to_recreate(lws: Mapping[str, Any], groups: Mapping[int, GroupState]) -> list[int]:
    """Outdated groups to replace now: highest index first, not below the partition; unready
    ones at once (they serve nothing), ready ones only within the `maxUnavailable` budget."""
    replicas = replicas_of(lws)
    unavailable = sum(1 for i in range(replicas) if not (i in groups and groups[i].ready))
    budget = max_unavailable(lws) - unavailable
    out = []
    for index in sorted((i for i in groups if i < replicas), reverse=True):
        group = groups[index]
        if index < partition_of(lws) or group.updated or not group.pods:
            continue
        if not group.ready:
            out.append(index)
        elif budget > 0:
            out.append(index)
            budget -= 1
    return out


def lws_status(lws: Mapping[str, Any], groups: Mapping[int, GroupState], stamp: str) -> Obj:
    """The status the LWS controller reports for these groups."""
    replicas = replicas_of(lws)
    name = str(meta(lws)["name"])
    current = [groups[i] for i in range(replicas) if i in groups]
    ready = sum(1 for g in current if g.ready)
    updated = sum(1 for g in current if g.updated)
    ready_and_updated = sum(1 for g in current if g.ready and g.updated)
    available = ready_and_updated >= replicas
    updating = updated < replicas
    generation = meta(lws).get("generation")
    conds = [
        condition(
            "Available",
            available,
            "AllGroupsReady" if available else "GroupsNotReady",
            "All replicas are ready" if available else f"{ready_and_updated}/{replicas} replicas are ready",
            generation=generation,
        ),
        condition(
            "Progressing",
            not available,
            "GroupsProgressing" if not available else "AllGroupsReady",
            "Replicas are progressing" if not available else "All replicas are ready",
            generation=generation,
        ),
        condition(
            "UpdateInProgress",
            updating,
            "GroupsUpdating" if updating else "UpdatesDone",
            "Rolling Upgrade is in progress" if updating else "No update in progress",
            generation=generation,
        ),
    ]
    previous = (lws.get("status") or {}).get("conditions")
    return {
        "replicas": sum(1 for g in groups.values() if g.has_leader),
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "hpaPodSelector": f"{NAME_LABEL}={name},{WORKER_INDEX_LABEL}=0",
        "conditions": merge_conditions(previous, conds, stamp),
    }


# --------------------------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------------------------


class FakeLWS:
    """Keeps every LeaderWorkerSet's groups (in `namespace`, or all) in shape, and its status."""

    def __init__(self, client: AsyncClient, *, namespace: str | None = None, resync: float = 5.0) -> None:
        self.client = client
        self.namespace = namespace
        self.loop = Loop(
            "fake-lws", client, self.reconcile_all, [LeaderWorkerSet, Pod], namespace=namespace, resync=resync
        )
        self._recreated: dict[tuple[str, int], float] = {}
        self.stats = {"pods_created": 0, "pods_deleted": 0, "status_writes": 0}

    async def run(self) -> None:
        await self.loop.run()

    def stop(self) -> None:
        self.loop.stop()

    async def reconcile_all(self) -> None:
        sets = await list_all(self.client, LeaderWorkerSet, self.namespace)
        if not sets:
            return
        pods = await list_all(self.client, Pod, self.namespace)
        services = {
            (meta(s)["namespace"], meta(s)["name"]) for s in await list_all(self.client, Service, self.namespace)
        }
        for lws in sets:
            if meta(lws).get("deletionTimestamp"):
                continue
            uid = str(meta(lws)["uid"])
            await self.reconcile(lws, [p for p in pods if owned_by(p, uid)], services)

    async def reconcile(self, lws: Obj, pods: list[Obj], services: set[tuple[str, str]]) -> None:
        m = meta(lws)
        name, namespace, uid = str(m["name"]), str(m["namespace"]), str(m["uid"])
        if (namespace, name) not in services:
            await self._create(raw_resource(Service)(headless_service(lws)))
        groups = groups_of(lws, pods)
        replicas = replicas_of(lws)
        touched: set[int] = set()
        # Scale down: whole groups beyond `replicas`, and pods that belong to no group any more.
        for index, group in groups.items():
            if index >= replicas:
                await self._delete_group(namespace, group.pods.values())
                touched.add(index)
        wanted_names = {n for i in range(replicas) for n in group_pod_names(name, i, size_of(lws))}
        for pod in pods:
            if meta(pod)["name"] not in wanted_names and not meta(pod).get("deletionTimestamp"):
                await self._delete_group(namespace, [pod])
        # A deleted member takes its group with it (RecreateGroupOnPodRestart); a group with a
        # terminating pod waits until it is gone (deletion events wake us). A failed or restarted
        # member recreates the group too, at most once per back-off period.
        policy = (_spec(lws).get("leaderWorkerTemplate") or {}).get("restartPolicy") or "RecreateGroupOnPodRestart"
        recreate_groups = policy == "RecreateGroupOnPodRestart"
        now = time.monotonic()
        for index, group in groups.items():
            if index in touched:
                continue
            members = list(group.pods.values())
            if any(meta(p).get("deletionTimestamp") for p in members):
                if recreate_groups:
                    await self._delete_group(namespace, members)
                touched.add(index)
                continue
            broken = [p for p in members if pod_broken(p)]
            if not broken:
                continue
            touched.add(index)
            if now - self._recreated.get((uid, index), -RECREATE_BACKOFF) < RECREATE_BACKOFF:
                continue  # the periodic resync comes back after the back-off
            self._recreated[(uid, index)] = now
            await self._delete_group(namespace, members if recreate_groups else broken)
        # Template changes: rolling recreation.
        for index in groups_to_recreate(lws, groups):
            if index not in touched:
                await self._delete_group(namespace, groups[index].pods.values())
                touched.add(index)
        # Create what is missing.
        startup = _spec(lws).get("startupPolicy") or "LeaderCreated"
        for index in range(replicas):
            if index in touched:
                continue
            current = groups.get(index)
            present = current.pods if current else {}
            names = group_pod_names(name, index, size_of(lws))
            leader = present.get(names[0])
            if leader is None:
                await self._create(raw_resource(Pod)(group_pod(lws, index, 0)))
                if startup == "LeaderReady":
                    continue
            elif startup == "LeaderReady" and not pod_ready(leader):
                continue
            for j, pod_name in enumerate(names[1:], start=1):
                if pod_name not in present:
                    await self._create(raw_resource(Pod)(group_pod(lws, index, j)))
        status = lws_status(lws, groups_of(lws, pods), now_rfc3339())
        if status != (lws.get("status") or {}):
            try:
                await self.client.patch(
                    LeaderWorkerSet.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
                )
                self.stats["status_writes"] += 1
            except ApiError as exc:
                if exc.status.code != 404:
                    raise

    async def _create(self, obj: Any) -> None:
        try:
            await self.client.create(obj)
            if obj.get("kind") == "Pod":
                self.stats["pods_created"] += 1
        except ApiError as exc:
            if exc.status.code != 409:  # the old pod of that name is still terminating
                raise

    async def _delete_group(self, namespace: str, pods: Any) -> None:
        for pod in list(pods):
            if meta(pod).get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(Pod, meta(pod)["name"], namespace=namespace)
                self.stats["pods_deleted"] += 1
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
