"""`fusioninfer status`: one service's tree of children, components, conditions and Events.

Read-only (get/list of the service, its children by label, and its Events): works with a
viewer's RBAC against any cluster; the demo prints the same view at its end.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Event
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from fusioninfer.api.labels import LABEL_SERVICE
from fusioninfer.builders.kinds import CHILD_KINDS
from fusioninfer.kube.conditions import find_condition
from fusioninfer.runtime.registry import default_registry

EVENTS_SHOWN = 8


async def service_children(client: AsyncClient, namespace: str, service: str) -> list[dict[str, Any]]:
    """The service's children of every kind the operator creates (kinds whose API is missing are skipped)."""
    from lightkube import ApiError

    out = []
    for kind in CHILD_KINDS:
        resource = default_registry.resolve(kind.api_version, kind.kind)
        if kind.capability is not None:
            resource = default_registry.register(kind.api_version, kind.kind, plural=kind.plural, namespaced=True)
        try:
            async for obj in client.list(resource, namespace=namespace, labels={LABEL_SERVICE: service}):
                out.append(obj if isinstance(obj, dict) else obj.to_dict())
        except ApiError as exc:
            if exc.status.code not in (403, 404):
                raise
    return out


async def service_events(client: AsyncClient, namespace: str, service: str) -> list[dict[str, Any]]:
    """The service's Events, newest last."""
    fields: dict[str, Any] = {"involvedObject.name": service, "involvedObject.kind": "InferenceService"}
    events = [e.to_dict() async for e in client.list(Event, namespace=namespace, fields=fields)]
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def describe_child(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    if obj["kind"] == "Deployment":
        return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)} ready"
    if obj["kind"] == "LeaderWorkerSet":
        return f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)} groups ready"
    if obj["kind"] == "PodGroup":
        phase = status.get("phase", "no status")
        return f"{phase} (minMember {spec.get('minMember')}, running {status.get('running', 0)})"
    if obj["kind"] in ("HTTPRoute", "InferencePool"):
        parents = [p for p in status.get("parents") or [] if find_condition(p.get("conditions"), "Accepted")]
        accepted = [
            p["parentRef"].get("name", "?")
            for p in parents
            if (find_condition(p.get("conditions"), "Accepted") or {}).get("status") == "True"
        ]
        return f"accepted by Gateway {', '.join(accepted)}" if accepted else "not accepted yet"
    return ""


def render_services(
    console: Console,
    namespace: str,
    services: dict[str, Any],
    children: dict[str, list[dict[str, Any]]],
    events: dict[str, list[dict[str, Any]]] | None = None,
) -> None:
    """The tree of children with their state, the components table, the conditions, the Events."""
    for name, obj in services.items():
        status = obj.get("status") or {}
        tree = Tree(f"[bold]InferenceService {namespace}/{name}[/] — {status.get('phase')}")
        for child in children[name]:
            tree.add(f"{child['kind']} {child['metadata']['name']} {describe_child(child)}".rstrip())
        console.print(tree)
        table = Table(title=f"{name}: components", show_lines=False)
        for col in ("role", "phase", "replicas ready", "pods ready", "nodes/replica"):
            table.add_column(col)
        for role, comp in (status.get("components") or {}).items():
            table.add_row(
                role,
                comp["phase"],
                f"{comp['readyReplicas']}/{comp['desiredReplicas']}",
                f"{comp['readyPods']}/{comp['totalPods']}",
                str(comp["nodesPerReplica"]),
            )
        console.print(table)
        conds = Table(title=f"{name}: conditions")
        for col in ("type", "status", "reason", "message"):
            conds.add_column(col)
        for cond in status.get("conditions") or []:
            conds.add_row(cond["type"], cond["status"], cond["reason"], cond.get("message", ""))
        console.print(conds)
        if events is not None:
            shown = Table(title=f"{name}: last events")
            for col in ("type", "reason", "count", "message"):
                shown.add_column(col)
            for event in events.get(name, [])[-EVENTS_SHOWN:]:
                shown.add_row(
                    str(event.get("type", "")),
                    str(event.get("reason", "")),
                    str(event.get("count") or 1),
                    str(event.get("message", "")),
                )
            console.print(shown)


def run_status(kubeconfig: str | None, namespace: str | None, name: str | None, output: str) -> int:
    """`fusioninfer status`: 0 when shown, 1 when the service does not exist."""
    import asyncio
    import json
    import sys

    import yaml
    from lightkube import ApiError, KubeConfig

    from fusioninfer.api.v1alpha1 import API_VERSION, KIND, PLURAL

    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    current = config.get()
    ns = namespace or (current.namespace if current is not None else None) or "default"
    resource = default_registry.register(API_VERSION, KIND, plural=PLURAL, namespaced=True)

    async def gather() -> dict[str, Any] | None:
        client = AsyncClient(config=config)
        try:
            if name is None:
                services = {o["metadata"]["name"]: dict(o) async for o in client.list(resource, namespace=ns)}
            else:
                try:
                    services = {name: dict(await client.get(resource, name, namespace=ns))}
                except ApiError as exc:
                    if exc.status.code == 404:
                        return None
                    raise
            return {
                "services": services,
                "children": {n: await service_children(client, ns, n) for n in services},
                "events": {n: await service_events(client, ns, n) for n in services},
            }
        finally:
            await client.close()

    found = asyncio.run(gather())
    if found is None:
        sys.stderr.write(f"error: InferenceService {ns}/{name} not found\n")
        return 1
    if output == "table":
        render_services(Console(highlight=False), ns, found["services"], found["children"], found["events"])
        return 0
    view = {
        n: {
            "status": obj.get("status") or {},
            "children": [
                {"kind": c["kind"], "name": c["metadata"]["name"], "state": describe_child(c)}
                for c in found["children"][n]
            ],
            "events": [
                {k: e.get(k) for k in ("type", "reason", "message", "count", "lastTimestamp")}
                for e in found["events"][n][-EVENTS_SHOWN:]
            ],
        }
        for n, obj in found["services"].items()
    }
    sys.stdout.write(json.dumps(view, indent=2, default=str) + "\n" if output == "json" else yaml.safe_dump(view))
    return 0
