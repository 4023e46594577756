"""The workload: N services of the README's monolithic example (every k-th with a router),
and what convergence means for them (the children the builders say must exist)."""

from __future__ import annotations

from dataclasses import dataclass

from fusioninfer.api.v1alpha1 import API_VERSION, KIND
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.kube.types import Obj


def has_router(index: int, router_every: int) -> bool:
    """Whether service `index` of the workload has a router role (every `router_every`-th)."""
    return router_every > 0 and index % router_every == 0


def service_manifest(namespace: str, index: int, router_every: int) -> Obj:
    """A monolithic service (the README's example); every `router_every`-th also has a
    prefix-cache router (endpoint picker, InferencePool, HTTPRoute: 9 children instead of 1).

    The router services share one Gateway, so each serves a model name of its own
    (`--served-model-name`), as users must: two routes matching one model name on one Gateway
    are a misconfiguration the operator reports at once (`RouteReady=False`,
    `ModelNameConflict`), and a benchmark of a sane fleet should not be timing a hundred
    Warnings."""
    routed = has_router(index, router_every)
    args = ["--model", "Qwen/Qwen3-8B"]
    if routed:
        args += ["--served-model-name", f"qwen3-8b-{index:05d}"]
    roles: list[Obj] = [
        {
            "name": "inference",
            "componentType": "worker",
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "args": args,
                            "resources": {"limits": {"nvidia.com/gpu": "1"}},
                        }
                    ]
                }
            },
        }
    ]
    if routed:
        roles.insert(
            0,
            {
                "name": "router",
                "componentType": "router",
                "strategy": "prefix-cache",
                "httproute": {"parentRefs": [{"name": "inference-gateway"}]},
            },
        )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": f"svc-{index:05d}", "namespace": namespace},
        "spec": {"roles": roles},
    }


@dataclass(frozen=True)
class Expected:
    """What convergence means for one namespace: these children exist, these services are observed."""

    children: frozenset[tuple[str, str]]
    services: frozenset[str]
    pods: int


def expected_state(manifests: list[Obj], caps: Capabilities) -> Expected:
    children: set[tuple[str, str]] = set()
    pods = 0
    for manifest in manifests:
        for obj in build(parse(manifest), BuildOptions(capabilities=caps)).objects:
            children.add((obj["kind"], obj["metadata"]["name"]))
            if obj["kind"] == "Deployment":
                pods += int(obj["spec"].get("replicas", 1))
    return Expected(frozenset(children), frozenset(m["metadata"]["name"] for m in manifests), pods)
