"""What the local controllers share (stand-ins, gateway, pod runner): watch-fed passes, conditions.

Every one is level-triggered in the simplest way that stays correct: a watch on each kind it
cares about only *wakes* it, and each pass then lists what it needs afresh and writes only what
differs. Lists are cheap at the size of a local cluster, and nothing can go stale in a cache
after an apiserver restart or a missed event. A periodic resync covers anything no watch sees
(e.g. time passing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from lightkube import ApiError, AsyncClient, KubeConfig

from fusioninfer.kube.retry import exponential_delay
from fusioninfer.kube.types import Obj
from fusioninfer.runtime.registry import raw_resource

log = logging.getLogger("fusioninfer.fakes")


def condition(
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    *,
    generation: int | None = None,
) -> Obj:
    """A `metav1.Condition` (lastTransitionTime filled in by `fusioninfer.kube.conditions.keep_transition_times`)."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    cond: Obj = {"type": type_, "status": value, "reason": reason, "message": message}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def meta(obj: Mapping[str, Any]) -> Obj:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def as_dict(obj: Any) -> Obj:
    """Plain dict of a lightkube object (generic resources are dicts already)."""
    if isinstance(obj, dict):
        return dict(obj)
    return dict(obj.to_dict())


def client_for(kubeconfig: Any, field_manager: str) -> AsyncClient:
    return AsyncClient(config=KubeConfig.from_file(kubeconfig), field_manager=field_manager)


async def list_all(client: AsyncClient, resource: type[Any], namespace: str | None) -> list[Obj]:
    """Every object of `resource` in `namespace` (None: all namespaces, or cluster-scoped), as
    plain dicts (built-in kinds through their raw twin: no model round trip)."""
    raw = raw_resource(resource)
    kwargs: dict[str, Any] = {}
    if _namespaced(raw):
        kwargs["namespace"] = namespace if namespace is not None else "*"
    try:
        return [as_dict(o) async for o in client.list(raw, **kwargs)]
    except ApiError as exc:
        if exc.status.code == 404:  # the CRD is not installed (yet): nothing to act on
            return []
        raise


def _namespaced(res: type[Any]) -> bool:
    from lightkube.core import resource as lk_res

    return issubclass(res, lk_res.NamespacedResource)


class Loop:
    """Run `reconcile` whenever a watched kind changes (debounced) or every `resync` seconds.

    A failing pass is logged and retried after a short back-off; a broken watch (apiserver
    restart, 410 Gone) is simply reopened. `stop()` ends `run()`.
    """

    def __init__(
        self,
        name: str,
        client: AsyncClient,
        reconcile: Callable[[], Awaitable[None]],
        watched: Sequence[type[Any]],
        *,
        namespace: str | None = None,
        resync: float = 5.0,
        debounce: float = 0.05,
    ) -> None:
        self.name = name
        self.client = client
        self.reconcile = reconcile
        self.watched = list(watched)
        self.namespace = namespace
        self.resync = resync
        self.debounce = debounce
        self.passes = 0
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    async def _watch(self, resource: type[Any]) -> None:
        raw = raw_resource(resource)
        kwargs: dict[str, Any] = {}
        if _namespaced(raw):
            kwargs["namespace"] = self.namespace if self.namespace is not None else "*"
        while True:
            try:
                async for _event, _obj in self.client.watch(raw, **kwargs):
                    self.kick()
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                missing = exc.status.code == 404  # CRD not installed yet: look again now and then
                log.debug("%s: watch on %s failed (%s)", self.name, raw.__name__, exc)
            except Exception as exc:
                missing = False
                log.debug("%s: watch on %s interrupted (%s)", self.name, raw.__name__, exc)
            self.kick()  # whatever happened meanwhile must be looked at
            await asyncio.sleep(5.0 if missing else 0.5)

    async def run(self) -> None:
        watches = [asyncio.create_task(self._watch(r), name=f"{self.name}-watch") for r in self.watched]
        failures = 0
        try:
            while not self._stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.resync)
                if self._stopped.is_set():
                    break
                await asyncio.sleep(self.debounce)  # let a burst of events settle into one pass
                self._wake.clear()
                try:
                    await self.reconcile()
                    self.passes += 1
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    delay = exponential_delay(failures, base=0.2, cap=5.0)
                    failures += 1
                    log.warning("%s: pass failed (%s); retrying in %.1fs", self.name, exc, delay)
                    await asyncio.sleep(delay)
                    self.kick()
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
