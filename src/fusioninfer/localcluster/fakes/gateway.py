"""Fake Gateway API + Inference Extension implementation: status only, no data plane.

It plays a gateway controller whose `controllerName` is `CONTROLLER_NAME` (a real one would be,
e.g., `kgateway.dev/kgateway`). Like a real implementation it acts only for GatewayClasses whose
`spec.controllerName` is its own, and for the Gateways of those classes, and writes (via the
status subresources):

- GatewayClass: `Accepted=True`.
- Gateway: `Accepted=True`, `Programmed=True`, an address (10.96.255.x: not routable, nothing
  listens), and per listener `supportedKinds: [HTTPRoute]`, `attachedRoutes` and the conditions
  `Accepted`, `Programmed`, `ResolvedRefs` (True) and `Conflicted` (False).
- HTTPRoute: one `status.parents[]` entry per parentRef that names one of its Gateways (Gateway
  kind, namespace defaulting to the route's): `Accepted=True` (or False/`NotAllowedByListeners`
  when the listeners' `allowedRoutes.namespaces.from: Same` excludes the route's namespace) and
  `ResolvedRefs=True` when every backendRef exists (a Service, or an InferencePool of
  `inference.networking.k8s.io`), else False/`BackendNotFound` (or `InvalidKind`). parentRefs
  naming a Gateway that does not exist or is not its own are left alone, as is every entry
  another controller wrote: with no Gateway there is no status, exactly as on a real cluster.
- InferencePool: one `status.parents[]` entry per own Gateway that an accepted HTTPRoute routes to
  the pool through: `Accepted=True` and `ResolvedRefs=True` when the endpoint picker Service
  (`endpointPickerRef`) exists, else False/`InvalidExtensionRef`.

Not modelled: hostnames/section names/ports matching, ReferenceGrants, `allowedRoutes` selectors
(treated as All), and of course any traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from fusioninfer.localcluster.fakes.common import Loop, Obj, condition, list_all, merge_conditions, meta, now_rfc3339

log = logging.getLogger("fusioninfer.fakes.gateway")

CONTROLLER_NAME = "fusioninfer.io/fake-gateway-controller"
DEFAULT_GATEWAY_CLASS = "fusioninfer-fake"
GATEWAY_GROUP = "gateway.networking.k8s.io"
POOL_GROUP = "inference.networking.k8s.io"

GatewayClass = create_global_resource(GATEWAY_GROUP, "v1", "GatewayClass", "gatewayclasses")
Gateway = create_namespaced_resource(GATEWAY_GROUP, "v1", "Gateway", "gateways")
HTTPRoute = create_namespaced_resource(GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes")
InferencePool = create_namespaced_resource(POOL_GROUP, "v1", "InferencePool", "inferencepools")

Key = tuple[str, str]  # (namespace, name)


def gateway_class_manifest(name: str = DEFAULT_GATEWAY_CLASS) -> Obj:
    """A GatewayClass the fake implements (what installing a real gateway would create)."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": CONTROLLER_NAME, "description": "FusionInfer fake gateway (status only)"},
    }


def _key(obj: Mapping[str, Any]) -> Key:
    return str(meta(obj).get("namespace", "")), str(meta(obj)["name"])


def _generation(obj: Mapping[str, Any]) -> int | None:
    value = meta(obj).get("generation")
    return int(value) if value is not None else None


def gateway_address(namespace: str, name: str) -> str:
    """A stable, made-up address per Gateway."""
    digest = sum(f"{namespace}/{name}".encode()) % 250
    return f"10.96.255.{digest + 1}"


def parent_gateway(route: Mapping[str, Any], ref: Mapping[str, Any]) -> Key | None:
    """The Gateway a parentRef names, or None if it names something else."""
    if (ref.get("group") or GATEWAY_GROUP) != GATEWAY_GROUP or (ref.get("kind") or "Gateway") != "Gateway":
        return None
    return str(ref.get("namespace") or meta(route).get("namespace", "")), str(ref["name"])


def allows_route(gateway: Mapping[str, Any], route_namespace: str) -> bool:
    """Whether any listener admits routes from `route_namespace` (`from: Same` is the default)."""
    gw_ns = str(meta(gateway).get("namespace", ""))
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        source = ((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from") or "Same"
        if source != "Same" or route_namespace == gw_ns:
            return True
    return False


def backend_problems(route: Mapping[str, Any], services: set[Key], pools: set[Key]) -> tuple[str, str] | None:
    """(reason, message) for the first backendRef that does not resolve, or None."""
    namespace = str(meta(route).get("namespace", ""))
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            group, kind = ref.get("group") or "", ref.get("kind") or "Service"
            key = (str(ref.get("namespace") or namespace), str(ref.get("name")))
            if group == "" and kind == "Service":
                if key not in services:
                    return "BackendNotFound", f"Service {key[0]}/{key[1]} not found"
            elif group == POOL_GROUP and kind == "InferencePool":
                if key not in pools:
                    return "BackendNotFound", f"InferencePool {key[0]}/{key[1]} not found"
            else:
                return "InvalidKind", f"unsupported backend {kind}.{group or 'core'}"
    return None


def route_parent_statuses(
    route: Mapping[str, Any],
    gateways: Mapping[Key, Obj],
    services: set[Key],
    pools: set[Key],
    stamp: str,
) -> list[Obj]:
    """The complete `status.parents` of `route`: entries of other controllers kept, ours recomputed."""
    namespace = str(meta(route).get("namespace", ""))
    previous = (route.get("status") or {}).get("parents") or []
    kept = [p for p in previous if p.get("controllerName") != CONTROLLER_NAME]
    old_ours = {
        (str((p.get("parentRef") or {}).get("namespace") or namespace), str((p.get("parentRef") or {}).get("name"))): p
        for p in previous
        if p.get("controllerName") == CONTROLLER_NAME
    }
    generation = _generation(route)
    ours = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        key = parent_gateway(route, ref)
        if key is None or key not in gateways:
            continue
        if allows_route(gateways[key], namespace):
            accepted = condition("Accepted", True, "Accepted", "Route is accepted", generation=generation)
        else:
            accepted = condition(
                "Accepted",
                False,
                "NotAllowedByListeners",
                f"no listener of Gateway {key[0]}/{key[1]} allows routes from namespace {namespace}",
                generation=generation,
            )
        problem = backend_problems(route, services, pools)
        resolved = (
            condition("ResolvedRefs", False, problem[0], problem[1], generation=generation)
            if problem
            else condition(
                "ResolvedRefs", True, "ResolvedRefs", "Resolved all the Object references", generation=generation
            )
        )
        before = (old_ours.get(key) or {}).get("conditions")
        parent_ref = {"group": GATEWAY_GROUP, "kind": "Gateway", **{k: v for k, v in ref.items() if v is not None}}
        ours.append(
            {
                "parentRef": parent_ref,
                "controllerName": CONTROLLER_NAME,
                "conditions": merge_conditions(before, [accepted, resolved], stamp),
            }
        )
    return kept + ours


def accepted_by(parents: Iterable[Mapping[str, Any]], route_namespace: str) -> list[Key]:
    """Our Gateways that accepted a route, from its (new) parent statuses."""
    out = []
    for parent in parents:
        if parent.get("controllerName") != CONTROLLER_NAME:
            continue
        conds = parent.get("conditions") or []
        if any(c.get("type") == "Accepted" and c.get("status") == "True" for c in conds):
            ref = parent.get("parentRef") or {}
            out.append((str(ref.get("namespace") or route_namespace), str(ref.get("name"))))
    return out


def gateway_status(gateway: Mapping[str, Any], attached: Mapping[str, int], stamp: str) -> Obj:
    """Accepted and Programmed, with an address and per-listener status."""
    namespace, name = _key(gateway)
    generation = _generation(gateway)
    previous = gateway.get("status") or {}
    old_listeners = {str(ls.get("name")): ls for ls in previous.get("listeners") or []}
    listeners = []
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        lname = str(listener.get("name"))
        conds = [
            condition("Accepted", True, "Accepted", "Listener is accepted", generation=generation),
            condition("Programmed", True, "Programmed", "Listener is programmed", generation=generation),
            condition(
                "ResolvedRefs", True, "ResolvedRefs", "Resolved all the Object references", generation=generation
            ),
            condition("Conflicted", False, "NoConflicts", "No conflicts", generation=generation),
        ]
        listeners.append(
            {
                "name": lname,
                "supportedKinds": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute"}],
                "attachedRoutes": int(attached.get(lname, 0)),
                "conditions": merge_conditions((old_listeners.get(lname) or {}).get("conditions"), conds, stamp),
            }
        )
    conds = [
        condition("Accepted", True, "Accepted", f"Gateway accepted by {CONTROLLER_NAME}", generation=generation),
        condition(
            "Programmed", True, "Programmed", "Gateway is programmed (fake: no data plane)", generation=generation
        ),
    ]
    return {
        "addresses": [{"type": "IPAddress", "value": gateway_address(namespace, name)}],
        "conditions": merge_conditions(previous.get("conditions"), conds, stamp),
        "listeners": listeners,
    }


def pool_parent_statuses(pool: Mapping[str, Any], gateways: Sequence[Key], services: set[Key], stamp: str) -> list[Obj]:
    """`status.parents` of an InferencePool: other controllers' entries kept, one of ours per Gateway."""
    namespace = str(meta(pool).get("namespace", ""))
    previous = (pool.get("status") or {}).get("parents") or []
    kept = [p for p in previous if p.get("controllerName") != CONTROLLER_NAME]
    old = {
        str((p.get("parentRef") or {}).get("name")): p for p in previous if p.get("controllerName") == CONTROLLER_NAME
    }
    generation = _generation(pool)
    epp = (pool.get("spec") or {}).get("endpointPickerRef") or {}
    epp_key = (namespace, str(epp.get("name")))
    ok = (epp.get("kind") or "Service") == "Service" and epp_key in services
    ours = []
    for gw_ns, gw_name in sorted(set(gateways)):
        resolved = (
            condition("ResolvedRefs", True, "ResolvedRefs", "Resolved ExtensionRef", generation=generation)
            if ok
            else condition(
                "ResolvedRefs",
                False,
                "InvalidExtensionRef",
                f"endpoint picker Service {epp_key[1]} not found",
                generation=generation,
            )
        )
        accepted = condition(
            "Accepted", True, "Accepted", "InferencePool has been Accepted by controller", generation=generation
        )
        ours.append(
            {
                "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gw_name, "namespace": gw_ns},
                "controllerName": CONTROLLER_NAME,
                "conditions": merge_conditions((old.get(gw_name) or {}).get("conditions"), [accepted, resolved], stamp),
            }
        )
    return kept + ours


def pool_backends(route: Mapping[str, Any]) -> list[Key]:
    namespace = str(meta(route).get("namespace", ""))
    out = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if ref.get("group") == POOL_GROUP and ref.get("kind") == "InferencePool":
                out.append((str(ref.get("namespace") or namespace), str(ref.get("name"))))
    return out


class FakeGateway:
    """Writes the statuses a gateway implementation would, for Gateways of its own classes."""

    def __init__(self, client: AsyncClient, *, namespace: str | None = None, resync: float = 10.0) -> None:
        self.client = client
        self.namespace = namespace
        self.loop = Loop(
            "fake-gateway",
            client,
            self.reconcile_all,
            [GatewayClass, Gateway, HTTPRoute, InferencePool, Service],
            namespace=namespace,
            resync=resync,
        )
        self.stats = {"status_writes": 0}

    async def run(self) -> None:
        await self.loop.run()

    def stop(self) -> None:
        self.loop.stop()

    async def reconcile_all(self) -> None:
        stamp = now_rfc3339()
        classes = [
            c
            for c in await list_all(self.client, GatewayClass, None)
            if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME
        ]
        class_names = {str(meta(c)["name"]) for c in classes}
        for gwc in classes:
            conds = [condition("Accepted", True, "Accepted", "GatewayClass is accepted", generation=_generation(gwc))]
            status = {
                **(gwc.get("status") or {}),
                "conditions": merge_conditions((gwc.get("status") or {}).get("conditions"), conds, stamp),
            }
            await self._write(GatewayClass, gwc, status)
        if not class_names:
            return
        gateways = {
            _key(g): g
            for g in await list_all(self.client, Gateway, self.namespace)
            if (g.get("spec") or {}).get("gatewayClassName") in class_names
        }
        routes = await list_all(self.client, HTTPRoute, self.namespace)
        pools = await list_all(self.client, InferencePool, self.namespace)
        services = {_key(s) for s in await list_all(self.client, Service, self.namespace)}
        pool_keys = {_key(p) for p in pools}
        attached: dict[Key, dict[str, int]] = {}
        pool_parents: dict[Key, list[Key]] = {}
        for route in routes:
            parents = route_parent_statuses(route, gateways, services, pool_keys, stamp)
            status = {**(route.get("status") or {}), "parents": parents}
            await self._write(HTTPRoute, route, status)
            for gw in accepted_by(parents, _key(route)[0]):
                for listener in (gateways[gw].get("spec") or {}).get("listeners") or []:
                    counts = attached.setdefault(gw, {})
                    counts[str(listener.get("name"))] = counts.get(str(listener.get("name")), 0) + 1
                for backend in pool_backends(route):
                    pool_parents.setdefault(backend, []).append(gw)
        for key, gateway in gateways.items():
            await self._write(Gateway, gateway, gateway_status(gateway, attached.get(key, {}), stamp))
        for pool in pools:
            status = {
                **(pool.get("status") or {}),
                "parents": pool_parent_statuses(pool, pool_parents.get(_key(pool), []), services, stamp),
            }
            await self._write(InferencePool, pool, status)

    async def _write(self, resource: Any, obj: Obj, status: Obj) -> None:
        previous = obj.get("status") or {}
        if status == previous or (not status.get("parents", True) and not previous.get("parents")):
            return
        namespace, name = _key(obj)
        client: Any = self.client  # one call for cluster-scoped and namespaced kinds
        kwargs = {"namespace": namespace} if namespace else {}
        try:
            await client.patch(resource.Status, name, {"status": status}, patch_type=PatchType.MERGE, **kwargs)
            self.stats["status_writes"] += 1
        except ApiError as exc:
            if exc.status.code != 404:
                raise
