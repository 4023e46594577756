"""The router role's own fields: the routing strategy, the endpoint picker's overrides and
scorers, and the Gateway the operator may create for the HTTPRoute.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from fusioninfer.api.spec_model import SpecModel, StrictBool, StrictFloat, StrictInt


class RoutingStrategy(StrEnum):
    """How the endpoint picker chooses a model server for each request."""

    PREFIX_CACHE = "prefix-cache"
    KV_CACHE_UTILIZATION = "kv-cache-utilization"
    QUEUE_SIZE = "queue-size"
    LORA_AFFINITY = "lora-affinity"
    PD_DISAGGREGATION = "pd-disaggregation"


DEFAULT_STRATEGY = RoutingStrategy.PREFIX_CACHE


class ScorerToggle(SpecModel):
    """One scorer of the endpoint picker, switched on with a weight."""

    enabled: StrictBool = Field(default=True, description="Use this scorer. Default true.")
    weight: Annotated[StrictFloat, Field(gt=0, le=1000)] = Field(
        default=1, description="Relative weight (> 0, up to 1000); decimals are scaled to integers. Default 1."
    )


class EndpointPickerPlugins(SpecModel):
    """Weighted scorers. When any is given, they replace the strategy's scorer."""

    prefix_cache_scorer: ScorerToggle | None = None
    kv_cache_utilization_scorer: ScorerToggle | None = None
    queue_scorer: ScorerToggle | None = None
    lora_affinity_scorer: ScorerToggle | None = None
    load_aware_scorer: ScorerToggle | None = None


class EndpointPicker(SpecModel):
    """Overrides for the endpoint picker (EPP) Deployment the router role becomes."""

    image: str | None = Field(default=None, description="EPP image; the default depends on the strategy.")
    extra_args: list[str] | None = Field(default=None, description="Extra flags appended to the EPP command.")
    replicas: Annotated[StrictInt, Field(ge=0, le=10)] | None = Field(
        default=None, description="Picker replicas (0-10; more than 1 turns on leader election). Default 1."
    )
    plugins: EndpointPickerPlugins | None = None
    resources: dict[str, Any] | None = Field(
        default=None,
        description="The picker container's resources (limits/requests). Default: requests of 500m CPU, 512Mi.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    routing_sidecar_image: str | None = Field(
        default=None, description="P/D only: the llm-d routing sidecar injected into decode pods."
    )


class GatewayServiceType(StrEnum):
    """How the gateway implementation exposes the Gateway it provisions (its Service type)."""

    LOAD_BALANCER = "LoadBalancer"
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"


class GatewayConfig(SpecModel):
    """Have the operator create the Gateway the HTTPRoute attaches to."""

    class_name: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        description="GatewayClass, e.g. kgateway, agentgateway, istio, gke-l7-regional-external-managed."
    )
    listener_port: Annotated[StrictInt, Field(ge=1, le=65535)] = Field(
        default=80, description="Port of the Gateway's HTTP listener. Default 80."
    )
    service_type: GatewayServiceType | None = Field(
        default=None, description="Service type of the gateway's data plane (passed as an infrastructure hint)."
    )
