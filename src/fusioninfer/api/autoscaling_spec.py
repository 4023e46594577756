"""Per-role autoscaling (`spec.roles[].autoscaling`): HPA or KEDA owns the role's replica count.

While a role is autoscaled the operator leaves its workload's replica count out of what it
applies, so the autoscaler's writes through `/scale` stand; `replicas` is the count again once
autoscaling is removed. `ratioTo` keeps a role in proportion to another autoscaled role instead
(a prefill role at 1:2 of its decode role), from that role's live replica count.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StrictInt

from fusioninfer.api.spec_model import SpecModel

RATIO = r"^[1-9][0-9]{0,3}:[1-9][0-9]{0,3}$"


class AutoscalingProvider(StrEnum):
    """Who scales: the Kubernetes HorizontalPodAutoscaler, or KEDA (scale to zero, event triggers)."""

    HPA = "hpa"
    KEDA = "keda"


class RatioTo(SpecModel):
    """Keep this role at `ratio` (this:other) of another role's live replicas, rounded up."""

    role: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        description="The autoscaled role to follow, e.g. decode."
    )
    ratio: Annotated[str, Field(pattern=RATIO)] = Field(description='this:other, e.g. "1:2".')

    def parts(self) -> tuple[int, int]:
        mine, theirs = self.ratio.split(":")
        return int(mine), int(theirs)


Passthrough = Field(default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class Autoscaling(SpecModel):
    """Replicas between `minReplicas` and `maxReplicas`, decided by the provider from `metrics`
    (HPA, autoscaling/v2 MetricSpec) or `triggers` (KEDA ScaledObject triggers)."""

    min_replicas: Annotated[StrictInt, Field(ge=0, le=10000)] | None = Field(
        default=None, description="Default 1; 0 (scale to zero) with KEDA only."
    )
    max_replicas: Annotated[StrictInt, Field(ge=1, le=10000)] | None = Field(
        default=None, description="Required unless ratioTo is set."
    )
    provider: AutoscalingProvider | None = Field(default=None, description="hpa (default) or keda.")
    metrics: list[dict[str, Any]] | None = Field(
        default=None,
        description="HPA only: autoscaling/v2 MetricSpec list, e.g. a Pods metric vllm:num_requests_waiting.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    triggers: list[dict[str, Any]] | None = Field(
        default=None,
        description="KEDA only: ScaledObject triggers, e.g. prometheus on vllm:num_requests_waiting.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    behavior: dict[str, Any] | None = Field(
        default=None,
        description="autoscaling/v2 HorizontalPodAutoscalerBehavior, passed through (KEDA: advanced HPA config).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    ratio_to: RatioTo | None = Field(default=None, description="Follow another autoscaled role in proportion.")

    @property
    def effective_provider(self) -> AutoscalingProvider:
        return self.provider or AutoscalingProvider.HPA

    @property
    def effective_min(self) -> int:
        return 1 if self.min_replicas is None else self.min_replicas
