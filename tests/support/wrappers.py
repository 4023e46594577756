"""Builders for the InferenceService manifests tests write, in the style of LWS's `test/wrappers`.

Tests used to re-write their own `service()` / `role()` / `isvc()` helpers, each a little
different; a change to the API then meant editing a dozen copies. One chained builder instead:

    InferenceServiceWrapper("svc").namespace("ns").router("prefix-cache").worker(replicas=2).obj()

Each method adds what a user would write in YAML and nothing else (no defaults the operator
would fill in), so a test reads as the manifest it is about. `.obj()` returns a fresh copy: the
wrapper can be reused, and constants passed in (containers, templates) are never shared with
the result, so a test that edits its manifest cannot change another test's.
"""

from __future__ import annotations

import copy
from typing import Any

from fusioninfer.api.v1alpha1 import API_VERSION, KIND

Manifest = dict[str, Any]

DEFAULT_IMAGE = "vllm/vllm-openai:v0.11.0"
DEFAULT_ARGS = ("--model", "m")
DEFAULT_CONTAINER_NAME = "vllm"
DEFAULT_PARENT = "gw"


def engine_container(
    *,
    name: str = DEFAULT_CONTAINER_NAME,
    image: str = DEFAULT_IMAGE,
    args: Any = DEFAULT_ARGS,
    gpus: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An engine container: `name`, `image`, `args` (none when `args` is None), GPU limits when
    `gpus` is given, then `extra`.

    `args` is written as given (a tuple becomes a list): a test of a malformed value such as
    `args="vllm serve"` gets exactly that value, not a list made of it."""
    out: dict[str, Any] = {"name": name, "image": image}
    if args is not None:
        out["args"] = list(args) if isinstance(args, tuple) else copy.deepcopy(args)
    if gpus is not None:
        out["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    out.update(copy.deepcopy(extra))
    return out


def serving_role(
    name: str,
    kind: str,
    *,
    replicas: int | None = None,
    container: dict[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    template: dict[str, Any] | None = None,
    pod_labels: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
    pod_spec: dict[str, Any] | None = None,
    image: str = DEFAULT_IMAGE,
    args: Any = DEFAULT_ARGS,
    gpus: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A worker/prefiller/decoder role: `name`, `componentType`, `replicas` (when given), the pod
    `template`, then `extra` fields (`multinode`, `autoscaling`, `engine`, ...) in the order given.

    The template is `template` as given, or one pod running `containers`, or `container`, or a
    container built from `image`/`args`/`gpus` (see `engine_container`); `pod_spec` adds fields
    (`nodeSelector`, `volumes`, ...) to that pod's spec after its containers."""
    role: dict[str, Any] = {"name": name, "componentType": kind}
    if replicas is not None:
        role["replicas"] = replicas
    if template is None:
        if containers is None:
            containers = [container if container is not None else engine_container(image=image, args=args, gpus=gpus)]
        metadata: dict[str, Any] = {}
        if pod_labels is not None:
            metadata["labels"] = pod_labels
        if pod_annotations is not None:
            metadata["annotations"] = pod_annotations
        spec: dict[str, Any] = {"containers": containers, **(pod_spec or {})}
        template = {"metadata": metadata, "spec": spec} if metadata else {"spec": spec}
    role["template"] = template
    role.update(extra)
    return copy.deepcopy(role)


def router_role(
    strategy: str | None = None,
    *,
    parent: str | None = DEFAULT_PARENT,
    name: str = "router",
    **extra: Any,
) -> dict[str, Any]:
    """A router role: `strategy` when given, an HTTPRoute attached to the Gateway `parent` (none
    when `parent` is None), then `extra` fields (`endpointPicker`, `gateway`, ...)."""
    role: dict[str, Any] = {"name": name, "componentType": "router"}
    if strategy is not None:
        role["strategy"] = strategy
    if parent is not None:
        role["httproute"] = {"parentRefs": [{"name": parent}]}
    role.update(extra)
    return copy.deepcopy(role)


class InferenceServiceWrapper:
    """A chained builder of one InferenceService manifest; `.obj()` returns the dict."""

    def __init__(self, name: str = "svc") -> None:
        self._obj: Manifest = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {"roles": []},
        }

    @property
    def _roles(self) -> list[dict[str, Any]]:
        roles: list[dict[str, Any]] = self._obj["spec"]["roles"]
        return roles

    def namespace(self, namespace: str) -> InferenceServiceWrapper:
        """Set `metadata.namespace`."""
        self._obj["metadata"]["namespace"] = namespace
        return self

    def metadata(self, **fields: Any) -> InferenceServiceWrapper:
        """Set other `metadata` fields (`uid`, `generation`, `annotations`, ...), as the apiserver
        would have them on a stored object."""
        self._obj["metadata"].update(copy.deepcopy(fields))
        return self

    def labels(self, labels: dict[str, str]) -> InferenceServiceWrapper:
        """Set `metadata.labels`."""
        self._obj["metadata"]["labels"] = dict(labels)
        return self

    def role(self, role: dict[str, Any]) -> InferenceServiceWrapper:
        """Append a role written out by hand (for anything the other methods do not cover,
        including roles that are wrong on purpose)."""
        self._roles.append(copy.deepcopy(role))
        return self

    def roles(self, *roles: dict[str, Any]) -> InferenceServiceWrapper:
        """Append several hand-written roles, in order."""
        for role in roles:
            self.role(role)
        return self

    def worker(self, name: str = "inference", **fields: Any) -> InferenceServiceWrapper:
        """Append a `worker` role (see `serving_role` for the fields)."""
        return self.role(serving_role(name, "worker", **fields))

    def prefiller(self, name: str = "prefill", **fields: Any) -> InferenceServiceWrapper:
        """Append a `prefiller` role (see `serving_role` for the fields)."""
        return self.role(serving_role(name, "prefiller", **fields))

    def decoder(self, name: str = "decode", **fields: Any) -> InferenceServiceWrapper:
        """Append a `decoder` role (see `serving_role` for the fields)."""
        return self.role(serving_role(name, "decoder", **fields))

    def router(self, strategy: str | None = None, **fields: Any) -> InferenceServiceWrapper:
        """Put a router role first, where users write it (see `router_role` for the fields)."""
        self._roles.insert(0, router_role(strategy, **fields))
        return self

    def autoscaling(self, role: str, autoscaling: dict[str, Any]) -> InferenceServiceWrapper:
        """Set `autoscaling` on the role named `role` (it must have been added already)."""
        (target,) = [r for r in self._roles if r.get("name") == role]
        target["autoscaling"] = copy.deepcopy(autoscaling)
        return self

    def model(self, **fields: Any) -> InferenceServiceWrapper:
        """Set `spec.model` (e.g. `name=...`, `uri=...`)."""
        self._obj["spec"]["model"] = copy.deepcopy(fields)
        return self

    def spec(self, **fields: Any) -> InferenceServiceWrapper:
        """Set other top-level `spec` fields (after `roles`)."""
        self._obj["spec"].update(copy.deepcopy(fields))
        return self

    def obj(self) -> Manifest:
        """The manifest, a fresh copy each call."""
        return copy.deepcopy(self._obj)


def pd_service(prefill: dict[str, Any], decode: dict[str, Any], *, router: bool = True) -> Manifest:
    """`svc` in `ns`: a prefill and a decode role running these containers, behind a P/D router
    attached to `gw` unless `router` is False (the shape every P/D engine-flag test starts from)."""
    svc = InferenceServiceWrapper().namespace("ns")
    if router:
        svc.router("pd-disaggregation")
    return svc.prefiller(container=prefill).decoder(container=decode).obj()
