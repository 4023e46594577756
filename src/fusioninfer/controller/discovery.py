"""Which optional APIs (LWS, Volcano, Gateway API, InferencePool, InferenceObjective) exist.

Watched, not polled: a CustomResourceDefinition informer tells the operator the moment a
prerequisite is installed (or removed), and the operator then starts the matching child
informers and re-reconciles every InferenceService, so a service converges by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fusioninfer.builders import Capabilities


@dataclass(frozen=True)
class RequiredCRD:
    capability: str
    name: str
    version: str


REQUIRED_CRDS: tuple[RequiredCRD, ...] = (
    RequiredCRD("lws", "leaderworkersets.leaderworkerset.x-k8s.io", "v1"),
    RequiredCRD("volcano", "podgroups.scheduling.volcano.sh", "v1beta1"),
    RequiredCRD("gateway_api", "httproutes.gateway.networking.k8s.io", "v1"),
    RequiredCRD("gateway_api", "gateways.gateway.networking.k8s.io", "v1"),
    RequiredCRD("inference_pool", "inferencepools.inference.networking.k8s.io", "v1"),
    RequiredCRD("inference_objective", "inferenceobjectives.inference.networking.x-k8s.io", "v1alpha2"),
    RequiredCRD("keda", "scaledobjects.keda.sh", "v1alpha1"),
)

CRD_NAMES = frozenset(c.name for c in REQUIRED_CRDS)


def crd_serves(crd: dict[str, Any], version: str) -> bool:
    """The CRD is established and serves `version`."""
    spec = crd.get("spec") or {}
    served = any(v.get("name") == version and v.get("served") for v in spec.get("versions") or [])
    conditions = (crd.get("status") or {}).get("conditions") or []
    established = any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
    return served and established


def capabilities_from(crds: Iterable[dict[str, Any]]) -> Capabilities:
    by_name = {c.get("metadata", {}).get("name"): c for c in crds}
    present: dict[str, bool] = {}
    for req in REQUIRED_CRDS:
        crd = by_name.get(req.name)
        ok = crd is not None and crd_serves(crd, req.version)
        present[req.capability] = present.get(req.capability, True) and ok
    return Capabilities.of(present)


def slim_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """Keep only what discovery reads: the LWS CRD alone is 1.2 MB of schema."""
    spec = crd.get("spec") or {}
    return {
        "apiVersion": crd.get("apiVersion"),
        "kind": crd.get("kind"),
        "metadata": crd.get("metadata"),
        "spec": {
            "group": spec.get("group"),
            "names": spec.get("names"),
            "scope": spec.get("scope"),
            "versions": [{"name": v.get("name"), "served": v.get("served")} for v in spec.get("versions") or []],
        },
        "status": {"conditions": (crd.get("status") or {}).get("conditions") or []},
    }
