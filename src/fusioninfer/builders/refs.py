"""How the routing objects of a service point at each other: API groups and kinds, the Gateway
listener an HTTPRoute attaches to, and the picker's gRPC port an InferencePool names.

These facts are shared by two emitted kinds each (HTTPRoute -> Gateway and InferencePool,
InferencePool -> picker Service), so they live below all of them: no routing builder imports
another one sideways for a constant.
"""

from __future__ import annotations

from typing import Any

from fusioninfer.api import naming
from fusioninfer.builders.context import BuildContext

GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_KIND = "Gateway"
# The one listener of the Gateway we create.
GATEWAY_LISTENER_NAME = "http"

INFERENCE_POOL_API_VERSION = "inference.networking.k8s.io/v1"
INFERENCE_POOL_GROUP = "inference.networking.k8s.io"
INFERENCE_POOL_KIND = "InferencePool"

# Where the endpoint picker serves ext-proc (its container and Service; the pool's `endpointPickerRef`).
PICKER_GRPC_PORT = 9002


def gateway_parent_ref(ctx: BuildContext) -> dict[str, Any]:
    """How the HTTPRoute attaches to the Gateway we create (to its one listener)."""
    return {
        "group": GATEWAY_GROUP,
        "kind": GATEWAY_KIND,
        "name": naming.gateway_name(ctx.name),
        "sectionName": GATEWAY_LISTENER_NAME,
    }
