"""The statuses the local gateway writes: pure functions from the objects to their new status.

The local gateway (`controller.LocalGateway`) is a Gateway API + Inference Extension
implementation whose `controllerName` is `CONTROLLER_NAME`. Like any implementation it acts only
for GatewayClasses whose `spec.controllerName` is its own, and for the Gateways of those
classes, and writes (via the status subresources):

- GatewayClass: `Accepted=True`.
- Gateway: `Accepted=True`, `Programmed` (True once Envoy serves its listeners), its address
  (a loopback address of the cluster's pod block that Envoy listens on), and per listener
  `supportedKinds: [HTTPRoute]`, `attachedRoutes` and the conditions `Accepted`, `Programmed`,
  `ResolvedRefs` and `Conflicted` (False). Only HTTP listeners are served; others are
  `Accepted=False`/`UnsupportedProtocol`.
- HTTPRoute: one `status.parents[]` entry per parentRef that names one of its Gateways (Gateway
  kind, namespace defaulting to the route's): `Accepted=True` (or False/`NotAllowedByListeners`
  when the listeners' `allowedRoutes.namespaces.from: Same` excludes the route's namespace) and
  `ResolvedRefs=True` when every backendRef exists (a Service, or an InferencePool of
  `inference.networking.k8s.io`), else False/`BackendNotFound` (or `InvalidKind`), and
  False/`EndpointPickerUnavailable` while an InferencePool's endpoint picker is not serving. parentRefs
  naming a Gateway that does not exist or is not its own are left alone, as is every entry
  another controller wrote: with no Gateway there is no status, exactly as on a real cluster.
- InferencePool: one `status.parents[]` entry per own Gateway that an accepted HTTPRoute routes to
  the pool through: `Accepted=True` and `ResolvedRefs=True` when the endpoint picker Service
  (`endpointPickerRef`) exists and its picker serves, else False/`InvalidExtensionRef`.

Not modelled: section names/ports matching, ReferenceGrants, `allowedRoutes` selectors (treated
as All).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from fusioninfer.kube.conditions import keep_transition_times
from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.kube_loop import condition, meta

log = logging.getLogger("fusioninfer.gateway")

CONTROLLER_NAME = "fusioninfer.io/local-gateway"
DEFAULT_GATEWAY_CLASS = "fusioninfer-local"
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
        "spec": {
            "controllerName": CONTROLLER_NAME,
            "description": "FusionInfer local gateway (Envoy + endpoint pickers)",
        },
    }


def gateway_manifest(namespace: str, name: str, class_name: str = DEFAULT_GATEWAY_CLASS) -> Obj:
    """A Gateway of `class_name` with one HTTP listener on port 80 for the routes of its own
    namespace (the Gateway API's default `allowedRoutes`, spelled out): what the demo and the
    data-path tests put their InferencePools behind."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}
            ],
        },
    }


def _key(obj: Mapping[str, Any]) -> Key:
    return str(meta(obj).get("namespace", "")), str(meta(obj)["name"])


def _generation(obj: Mapping[str, Any]) -> int | None:
    value = meta(obj).get("generation")
    return int(value) if value is not None else None


def gateway_addresses(gateways: Mapping[Key, Mapping[str, Any]], block: str) -> dict[Key, str]:
    """One address per Gateway in the first /24 of the cluster's pod block (`127.B.0.2-254`).

    A Gateway keeps the address its status already holds (so a restart changes nothing); a new
    one gets the address its name hashes to, or the next free one."""
    network = ipaddress.ip_network(block)
    pool = [str(network.network_address + offset) for offset in range(2, 255)]
    taken: dict[str, Key] = {}
    out: dict[Key, str] = {}
    for key in sorted(gateways):
        for entry in (gateways[key].get("status") or {}).get("addresses") or []:
            value = str(entry.get("value", ""))
            if value in pool and value not in taken:
                taken[value] = key
                out[key] = value
                break
    for key in sorted(k for k in gateways if k not in out):
        start = int.from_bytes(hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()[:4], "big") % len(pool)
        for step in range(len(pool)):
            candidate = pool[(start + step) % len(pool)]
            if candidate not in taken:
                taken[candidate] = key
                out[key] = candidate
                break
    return out


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
    unavailable: Mapping[Key, str] | None = None,
) -> list[Obj]:
    """The complete `status.parents` of `route`: entries of other controllers kept, ours recomputed.

    `unavailable` maps an InferencePool to why its endpoint picker is not serving."""
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
        problem = backend_problems(route, services, pools) or picker_problem(route, unavailable or {})
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
                "conditions": keep_transition_times(before, [accepted, resolved], stamp),
            }
        )
    return kept + ours


def picker_problem(route: Mapping[str, Any], unavailable: Mapping[Key, str]) -> tuple[str, str] | None:
    """(reason, message) when a pool the route sends to has no serving endpoint picker."""
    for pool in pool_backends(route):
        if pool in unavailable:
            return "EndpointPickerUnavailable", f"InferencePool {pool[0]}/{pool[1]}: {unavailable[pool]}"
    return None


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


def served_listener(listener: Mapping[str, Any]) -> bool:
    """The local gateway serves plain HTTP listeners only."""
    return str(listener.get("protocol") or "") == "HTTP"


def gateway_status(
    gateway: Mapping[str, Any], attached: Mapping[str, int], stamp: str, *, address: str | None, programmed: bool
) -> Obj:
    """Accepted and Programmed (when Envoy serves its listeners), with an address and per-listener status."""
    generation = _generation(gateway)
    previous = gateway.get("status") or {}
    old_listeners = {str(ls.get("name")): ls for ls in previous.get("listeners") or []}
    listeners = []
    for listener in (gateway.get("spec") or {}).get("listeners") or []:
        lname = str(listener.get("name"))
        served = served_listener(listener)
        conds = [
            condition("Accepted", True, "Accepted", "Listener is accepted", generation=generation)
            if served
            else condition(
                "Accepted",
                False,
                "UnsupportedProtocol",
                f"the local gateway serves HTTP listeners only, not {listener.get('protocol')}",
                generation=generation,
            ),
            condition("Programmed", True, "Programmed", "Listener is programmed", generation=generation)
            if served and programmed
            else condition("Programmed", False, "Pending", "Envoy does not serve the listener", generation=generation),
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
                "conditions": keep_transition_times((old_listeners.get(lname) or {}).get("conditions"), conds, stamp),
            }
        )
    if programmed and address is None:
        gw_programmed = condition(
            "Programmed", True, "Programmed", "status only: this local gateway has no data plane", generation=generation
        )
    elif programmed:
        gw_programmed = condition(
            "Programmed", True, "Programmed", f"Envoy listens on {address}", generation=generation
        )
    else:
        gw_programmed = condition(
            "Programmed", False, "Pending", "Envoy is not serving this Gateway's listeners yet", generation=generation
        )
    conds = [
        condition("Accepted", True, "Accepted", f"Gateway accepted by {CONTROLLER_NAME}", generation=generation),
        gw_programmed,
    ]
    return {
        **({"addresses": [{"type": "IPAddress", "value": address}]} if address else {}),
        "conditions": keep_transition_times(previous.get("conditions"), conds, stamp),
        "listeners": listeners,
    }


def pool_parent_statuses(
    pool: Mapping[str, Any],
    gateways: Sequence[Key],
    services: set[Key],
    stamp: str,
    unavailable: str | None = None,
) -> list[Obj]:
    """`status.parents` of an InferencePool: other controllers' entries kept, one of ours per Gateway.

    `unavailable` says why the pool's endpoint picker is not serving (None: it serves)."""
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
    why = f"endpoint picker Service {epp_key[1]} not found" if not ok else unavailable
    ours = []
    for gw_ns, gw_name in sorted(set(gateways)):
        resolved = (
            condition("ResolvedRefs", True, "ResolvedRefs", "Resolved ExtensionRef", generation=generation)
            if why is None
            else condition("ResolvedRefs", False, "InvalidExtensionRef", why, generation=generation)
        )
        accepted = condition(
            "Accepted", True, "Accepted", "InferencePool has been Accepted by controller", generation=generation
        )
        ours.append(
            {
                "parentRef": {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gw_name, "namespace": gw_ns},
                "controllerName": CONTROLLER_NAME,
                "conditions": keep_transition_times(
                    (old.get(gw_name) or {}).get("conditions"), [accepted, resolved], stamp
                ),
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
