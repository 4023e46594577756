"""The optional `gateway.networking.k8s.io/v1` Gateway `{service}-gateway` (seed 003's `gateway` block).

One plain-HTTP listener, `http`, on `listenerPort`, accepting routes from the service's own
namespace only. `allowedRoutes` is written out although it is the API default, so server-side
apply never sees a difference.

`serviceType` has no portable Gateway API field (v1.4.1 `spec.infrastructure` carries only
labels, annotations and a parametersRef). It is passed as the annotation Istio reads,
`networking.istio.io/service-type`; other implementations configure it their own way
(kgateway: a GatewayParameters referenced by the GatewayClass), which we report.
"""

from __future__ import annotations

from fusioninfer.api import naming
from fusioninfer.api.router_spec import GatewayConfig
from fusioninfer.api.v1alpha1 import Role
from fusioninfer.builders import refs
from fusioninfer.builders.context import BuildContext, Manifest

API_VERSION = refs.GATEWAY_API_VERSION
GROUP = refs.GATEWAY_GROUP
KIND = refs.GATEWAY_KIND
LISTENER_NAME = refs.GATEWAY_LISTENER_NAME
ISTIO_SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
ISTIO_CLASSES = frozenset({"istio"})


def build(ctx: BuildContext, router: Role, config: GatewayConfig) -> Manifest:
    annotations: dict[str, str] = {}
    if config.service_type is not None:
        annotations[ISTIO_SERVICE_TYPE_ANNOTATION] = config.service_type.value
        if config.class_name not in ISTIO_CLASSES:
            ctx.notice(
                "SpecWarnings",
                "GatewayServiceTypeNotPortable",
                f"router {router.name}: gateway.serviceType {config.service_type.value} is passed as the "
                f"{ISTIO_SERVICE_TYPE_ANNOTATION} annotation, which only Istio reads; configure the service "
                f"type of class {config.class_name!r} through its own parameters (e.g. kgateway "
                "GatewayParameters)",
            )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": ctx.metadata(naming.gateway_name(ctx.name), ctx.role_labels(router), annotations),
        "spec": {
            "gatewayClassName": config.class_name,
            "listeners": [
                {
                    "name": LISTENER_NAME,
                    "port": config.listener_port,
                    "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }
