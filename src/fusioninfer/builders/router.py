"""The router role -> endpoint picker, InferencePool, HTTPRoute (and Gateway).

Per router role (validation allows at most one), in apply order:

| object                              | name                   | needs (Capabilities)                  |
|-------------------------------------|------------------------|---------------------------------------|
| ServiceAccount, Role, RoleBinding   | `{svc}-epp`            | inference_pool + inference_objective  |
| ConfigMap (`config.yaml`)           | `{svc}-epp-config`     | inference_pool + inference_objective  |
| Deployment, Service                 | `{svc}-epp`            | inference_pool + inference_objective  |
| InferencePool                       | `{svc}-pool`           | inference_pool                        |
| Gateway (only with `gateway`)       | `{svc}-gateway`        | gateway_api                           |
| HTTPRoute                           | `{svc}-route`          | gateway_api + inference_pool          |

The picker v1.2.1 caches InferencePools and InferenceObjectives at start-up and never becomes
ready without both CRDs, so it is not deployed until they exist. Whatever cannot be built is
left out with one `PrerequisitesMet` notice naming what to install; the serving roles deploy
regardless, and the controller converges once the CRDs appear (it rebuilds on discovery).
"""

from __future__ import annotations

from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import engine_flags, epp, gateway, httproute, inferencepool
from fusioninfer.builders.context import BuildContext, Manifest
from fusioninfer.builders.epp_config import picker_config

PREREQUISITES = "PrerequisitesMet"
MISSING_APIS = "MissingAPIs"
GATEWAY_API_INSTALL = (
    "Gateway API v1.4.1 (kubectl apply --server-side -f "
    "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.1/standard-install.yaml)"
)
GIE_INSTALL = (
    "Gateway API Inference Extension v1.2.1 (kubectl apply -f "
    "https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/v1.2.1/manifests.yaml)"
)


def _report_missing(ctx: BuildContext, router: Role) -> None:
    caps = ctx.capabilities
    missing: list[str] = []
    if not caps.inference_pool:
        missing.append("InferencePool (inference.networking.k8s.io/v1)")
    if not caps.inference_objective:
        missing.append("InferenceObjective (inference.networking.x-k8s.io/v1alpha2)")
    if not caps.gateway_api:
        missing.append("Gateway and HTTPRoute (gateway.networking.k8s.io/v1)")
    if not missing:
        return
    installs = []
    if not (caps.inference_pool and caps.inference_objective):
        installs.append(GIE_INSTALL)
    if not caps.gateway_api:
        installs.append(GATEWAY_API_INSTALL)
    skipped = []
    if not (caps.inference_pool and caps.inference_objective):
        skipped.append("endpoint picker")
    if not caps.inference_pool:
        skipped.append("InferencePool")
    if not caps.gateway_api:
        skipped.append("Gateway" if router.gateway is not None else "")
    if not (caps.gateway_api and caps.inference_pool):
        skipped.append("HTTPRoute")
    ctx.notice(
        PREREQUISITES,
        MISSING_APIS,
        f"router {router.name}: the cluster lacks {', '.join(missing)}; not deployed: "
        f"{', '.join(s for s in skipped if s)}. Install {' and '.join(installs)}. "
        "The serving roles are deployed; routing follows once the APIs exist.",
    )


def build(ctx: BuildContext) -> list[Manifest]:
    router = ctx.isvc.router
    if router is None:
        return []
    caps = ctx.capabilities
    _report_missing(ctx, router)
    engine_flags.lint(ctx)
    objects: list[Manifest] = []
    if caps.inference_pool and caps.inference_objective:
        objects += epp.build(ctx, router, picker_config(router, epp.llmd_image(ctx, router)))
    if caps.inference_pool:
        objects.append(inferencepool.build(ctx, router))
    if caps.gateway_api and router.gateway is not None:
        objects.append(gateway.build(ctx, router, router.gateway))
    if caps.gateway_api and caps.inference_pool:
        objects.append(httproute.build(ctx, router))
    return objects
