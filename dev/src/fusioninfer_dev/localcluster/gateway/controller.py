"""The local gateway: a Gateway API + Inference Extension implementation with Envoy as data plane.

Each pass lists the Gateways of its classes, the HTTPRoutes, InferencePools, Services and Pods,
programs Envoy with their translation (`envoy_config`) and writes their statuses (`status`):
a Gateway is Programmed when Envoy accepts connections on every HTTP listener at its address,
and a route to an InferencePool whose endpoint picker is not serving says so in `ResolvedRefs`.

Without a pod block (no pod addresses, so nothing to route to) or without Envoy it writes the
statuses only, with every picker taken as serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType

from fusioninfer.kube.conditions import keep_transition_times, now_rfc3339
from fusioninfer.kube.types import Obj
from fusioninfer_dev.localcluster.gateway import envoy_config
from fusioninfer_dev.localcluster.gateway.body_router import BodyRouter
from fusioninfer_dev.localcluster.gateway.envoy import Envoy, listening
from fusioninfer_dev.localcluster.gateway.status import (
    CONTROLLER_NAME,
    Gateway,
    GatewayClass,
    HTTPRoute,
    InferencePool,
    Key,
    accepted_by,
    gateway_addresses,
    gateway_status,
    pool_backends,
    pool_parent_statuses,
    route_parent_statuses,
)
from fusioninfer_dev.localcluster.kube_loop import Loop, condition, list_all, meta
from fusioninfer_dev.localcluster.podrunner import PodRunner, in_block

log = logging.getLogger("fusioninfer.gateway")


def _key(obj: Mapping[str, Any]) -> Key:
    return str(meta(obj).get("namespace", "")), str(meta(obj)["name"])


def selects(selector: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    labels = meta(pod).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def serving_pods(pods: Sequence[Obj], namespace: str, selector: Mapping[str, str], block: str) -> list[Obj]:
    return [
        p
        for p in pods
        if meta(p).get("namespace") == namespace
        and selects(selector, p)
        and (p.get("status") or {}).get("phase") == "Running"
        and not meta(p).get("deletionTimestamp")
        and in_block(str((p.get("status") or {}).get("podIP") or ""), block)
    ]


class LocalGateway:
    """Writes the statuses a gateway implementation would and, with Envoy, serves the traffic."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        namespace: str | None = None,
        resync: float = 10.0,
        pod_block: str | None = None,
        envoy: Envoy | None = None,
        runner: PodRunner | None = None,
        body_router: BodyRouter | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.pod_block = pod_block
        self.envoy = envoy if pod_block else None
        self.runner = runner
        self.body_router = body_router if self.envoy is not None else None
        watched: list[type[Any]] = [GatewayClass, Gateway, HTTPRoute, InferencePool, Service]
        if self.envoy is not None:
            watched.append(Pod)
        self.loop = Loop("gateway", client, self.reconcile_all, watched, namespace=namespace, resync=resync)
        self.stats = {"status_writes": 0}

    async def run(self) -> None:
        try:
            await self.loop.run()
        finally:
            if self.envoy is not None:
                self.envoy.stop()
            if self.body_router is not None:
                self.body_router.stop()

    def stop(self) -> None:
        self.loop.stop()

    def pickers(
        self, pools: Sequence[Obj], services: Mapping[Key, Obj], pods: Sequence[Obj]
    ) -> dict[Key, envoy_config.PickerTarget]:
        """Where each pool's endpoint picker serves, or why it does not."""
        out: dict[Key, envoy_config.PickerTarget] = {}
        if self.runner is None or self.pod_block is None:
            return {_key(p): envoy_config.PickerTarget() for p in pools}
        running, unrunnable = self.runner.pickers, self.runner.unrunnable
        for pool in pools:
            namespace, _ = key = _key(pool)
            ref = str(((pool.get("spec") or {}).get("endpointPickerRef") or {}).get("name", ""))
            service = services.get((namespace, ref))
            if service is None:
                out[key] = envoy_config.PickerTarget(unavailable=f"endpoint picker Service {ref} not found")
                continue
            selector = (service.get("spec") or {}).get("selector") or {}
            candidates = serving_pods(pods, namespace, selector, self.pod_block)
            target = envoy_config.PickerTarget(unavailable=f"no endpoint picker pod of Service {ref} is running")
            for pod in candidates:
                pod_key = _key(pod)
                endpoint = running.get(pod_key)
                if endpoint is not None and listening("127.0.0.1", endpoint.grpc_port):
                    target = envoy_config.PickerTarget("127.0.0.1", endpoint.grpc_port, endpoint.tls)
                    break
                why = unrunnable.get(pod_key) or f"endpoint picker pod {pod_key[1]} is not serving yet"
                target = envoy_config.PickerTarget(unavailable=why)
            out[key] = target
        return out

    def service_endpoints(
        self, routes: Sequence[Obj], services: Mapping[Key, Obj], pods: Sequence[Obj]
    ) -> dict[tuple[str, str, int], list[tuple[str, int]]]:
        """Pod IP:targetPort behind each Service backendRef of the routes."""
        out: dict[tuple[str, str, int], list[tuple[str, int]]] = {}
        if self.pod_block is None:
            return out
        for route in routes:
            for rule in (route.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    if (ref.get("group") or "") != "" or (ref.get("kind") or "Service") != "Service":
                        continue
                    namespace = str(ref.get("namespace") or meta(route).get("namespace"))
                    service = services.get((namespace, str(ref["name"])))
                    if service is None:
                        continue
                    port = int(ref.get("port") or 0)
                    spec = service.get("spec") or {}
                    target = next(
                        (p.get("targetPort", port) for p in spec.get("ports") or [] if p["port"] == port), port
                    )
                    backends = serving_pods(pods, namespace, spec.get("selector") or {}, self.pod_block)
                    out[(namespace, str(ref["name"]), port)] = [
                        (str(p["status"]["podIP"]), int(target) if str(target).isdigit() else port) for p in backends
                    ]
        return out

    async def reconcile_all(self) -> None:
        stamp = now_rfc3339()
        classes = [
            c
            for c in await list_all(self.client, GatewayClass, None)
            if (c.get("spec") or {}).get("controllerName") == CONTROLLER_NAME
        ]
        class_names = {str(meta(c)["name"]) for c in classes}
        for gwc in classes:
            conds = [condition("Accepted", True, "Accepted", "GatewayClass is accepted", generation=_gen(gwc))]
            status = {
                **(gwc.get("status") or {}),
                "conditions": keep_transition_times((gwc.get("status") or {}).get("conditions"), conds, stamp),
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
        services = {_key(s): s for s in await list_all(self.client, Service, self.namespace)}
        pods = await list_all(self.client, Pod, self.namespace) if self.envoy is not None else []
        pickers = self.pickers(pools, services, pods)
        unavailable = {k: p.unavailable for k, p in pickers.items() if p.unavailable}
        pool_keys = {_key(p) for p in pools}
        attached: dict[Key, dict[str, int]] = {}
        pool_parents: dict[Key, list[Key]] = {}
        routes_by_gateway: dict[Key, list[Obj]] = {}
        for route in routes:
            parents = route_parent_statuses(route, gateways, set(services), pool_keys, stamp, unavailable)
            await self._write(HTTPRoute, route, {**(route.get("status") or {}), "parents": parents})
            for gw in accepted_by(parents, _key(route)[0]):
                routes_by_gateway.setdefault(gw, []).append(route)
                for listener in (gateways[gw].get("spec") or {}).get("listeners") or []:
                    counts = attached.setdefault(gw, {})
                    counts[str(listener.get("name"))] = counts.get(str(listener.get("name")), 0) + 1
                for backend in pool_backends(route):
                    pool_parents.setdefault(backend, []).append(gw)
        addresses = gateway_addresses(gateways, self.pod_block) if self.envoy is not None and self.pod_block else {}
        listeners = envoy_config.listeners_for(gateways, addresses, routes_by_gateway)
        programmed = self._program(listeners, pickers, self.service_endpoints(routes, services, pods))
        for key, gateway in gateways.items():
            ok = programmed and all(listening(ls.address, ls.port) for ls in listeners if ls.gateway == key)
            address = addresses.get(key)
            status = gateway_status(gateway, attached.get(key, {}), stamp, address=address, programmed=ok)
            await self._write(Gateway, gateway, status)
        for pool in pools:
            why = unavailable.get(_key(pool))
            parents = pool_parent_statuses(pool, pool_parents.get(_key(pool), []), set(services), stamp, why)
            await self._write(InferencePool, pool, {**(pool.get("status") or {}), "parents": parents})

    def _program(
        self,
        listeners: Sequence[envoy_config.Listener],
        pickers: Mapping[Key, envoy_config.PickerTarget],
        services: Mapping[tuple[str, str, int], Sequence[tuple[str, int]]],
    ) -> bool:
        """Hand Envoy the translation; True when it runs (status only: True)."""
        if self.envoy is None:
            return True
        self.envoy.ensure_running()
        body_router = None
        if self.body_router is not None:
            self.body_router.ensure_running()
            body_router = self.body_router.target()
        access_log = str(self.envoy.access_log)
        resources = [envoy_config.listener_config(ls, pickers, services, access_log, body_router) for ls in listeners]
        if self.envoy.update(resources, envoy_config.clusters_config(pickers, services, body_router)):
            log.info("Envoy config v%d: %d listeners", self.envoy.version, len(resources))
        # Not Programmed before the body-based router is in the chain: without it no request
        # carries the model header that every service's route matches.
        return self.envoy.alive() and (self.body_router is None or body_router is not None)

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


def _gen(obj: Mapping[str, Any]) -> int | None:
    value = meta(obj).get("generation")
    return int(value) if value is not None else None
