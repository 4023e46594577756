"""InferenceService documents the tests build again and again (in the style of LWS's test wrappers)."""

from __future__ import annotations

import copy
from typing import Any

PD_ROUTER = {
    "name": "router",
    "componentType": "router",
    "strategy": "pd-disaggregation",
    "httproute": {"parentRefs": [{"name": "gw"}]},
}


def pd_service(prefill: dict[str, Any], decode: dict[str, Any], *, router: bool = True) -> dict[str, Any]:
    """`svc` in `ns`: a prefill and a decode role running these containers, behind a P/D router."""

    def role(name: str, kind: str, container: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "componentType": kind, "template": {"spec": {"containers": [copy.deepcopy(container)]}}}

    roles = [role("prefill", "prefiller", prefill), role("decode", "decoder", decode)]
    return {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {"roles": [copy.deepcopy(PD_ROUTER), *roles] if router else roles},
    }
