"""`status` of an InferenceService: written by the operator only, through the status subresource.

These models generate the status part of the CRD's schema (and its field reference); the
operator itself writes plain dicts (`controller.status`), which the schema then checks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _StatusModel(BaseModel):
    """The status structs' one config: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(_StatusModel):
    """The metav1.Condition shape."""

    type: Annotated[str, Field(min_length=1, max_length=316)] = Field(
        description="Valid, PrerequisitesMet, Ready, Progressing, Degraded, RouteReady, GangScheduled, SpecWarnings."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The spec generation the condition was computed for."
    )
    last_transition_time: str = Field(
        description="When the status last changed.", json_schema_extra={"format": "date-time"}
    )
    reason: Annotated[str, Field(min_length=1, max_length=1024)] = Field(description="Why, in one CamelCase word.")
    message: Annotated[str, Field(max_length=32768)] = Field(default="", description="Why, for people.")


class ComponentPhase(StrEnum):
    """Where one role stands: no pods yet, rolling out, all replicas ready, or failing."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    RUNNING = "Running"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class ComponentStatus(_StatusModel):
    """Aggregated runtime state of one role."""

    desired_replicas: int = Field(description="Replicas wanted (set by the autoscaler when the role is autoscaled).")
    ready_replicas: int = Field(description="Replicas whose every pod is ready.")
    nodes_per_replica: int = Field(description="Pods per replica (multi-node roles: the group size).")
    total_pods: int = Field(description="desiredReplicas x nodesPerReplica.")
    ready_pods: int = Field(description="Pods ready.")
    phase: ComponentPhase = Field(description="Pending, Deploying, Running, Failed or Unknown.")
    last_update_time: str | None = Field(
        default=None, description="When this role's status last changed.", json_schema_extra={"format": "date-time"}
    )


class ServicePhase(StrEnum):
    """Summary of the whole service, for the `kubectl get` column."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    INVALID = "Invalid"


class InferenceServiceStatus(_StatusModel):
    """What the operator observed: written by the operator only, through the status subresource."""

    observed_generation: int | None = Field(default=None, description="The spec generation this status is for.")
    phase: ServicePhase | None = Field(
        default=None, description="One-word summary: Pending, Deploying, Running, Degraded, Failed or Invalid."
    )
    ready_roles: str | None = Field(default=None, description='Serving roles fully ready, e.g. "1/2".')
    reason: str | None = Field(
        default=None,
        description="The reason of the condition that explains the state: the first False of Valid, "
        "PrerequisitesMet, Ready (kubectl get -o wide).",
    )
    message: str | None = Field(default=None, description="That condition's message.")
    models: str | None = Field(default=None, description="The model names clients can send, comma-separated.")
    route: str | None = Field(default=None, description="The Gateway(s) the service is routed through.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="The state, one condition per aspect.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    components: dict[str, ComponentStatus] | None = Field(default=None, description="Per role, by role name.")
