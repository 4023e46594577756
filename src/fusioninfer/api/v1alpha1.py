"""The `InferenceService` API, `fusioninfer.io/v1alpha1`.

These pydantic models are the single source of truth for the API: the CRD in
`config/crd/bases/` is generated from them (see `fusioninfer.api.crd`), the CLI validates
with them, and the controller reads every InferenceService through them.

Field names follow the Kubernetes JSON (camelCase) via aliases (`spec_model`); Python code
uses snake_case. The router's fields are `router_spec`'s, the status `status_spec`'s.
Documents are parsed by alias only (`validation.parse`): the CRD knows only camelCase, so a
snake_case key would be pruned on a cluster and must be an unknown field here too.

Numbers and booleans are strict (no `"3"`, `true` or `2.0` for an integer): the CRD's
`type: integer` rejects them, and `fusioninfer validate` must not accept what `kubectl apply`
refuses.
Defaults that depend on other fields (the router strategy, the engine) are applied in code,
not in the CRD, so that a field that is only valid on one kind of role never appears on
another one after admission.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from fusioninfer.api.autoscaling_spec import Autoscaling
from fusioninfer.api.model_spec import ENGINE_ARG_KEY, EngineArgValue, ModelSpec, SpeculativeDecoding
from fusioninfer.api.router_spec import DEFAULT_STRATEGY, EndpointPicker, GatewayConfig, RoutingStrategy
from fusioninfer.api.spec_model import SpecModel, StrictBool, StrictInt
from fusioninfer.api.status_spec import InferenceServiceStatus

GROUP = "fusioninfer.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceService"
PLURAL = "inferenceservices"
SINGULAR = "inferenceservice"
# `isvc` belongs to KServe; `fisvc` cannot clash with it.
SHORT_NAMES = ("fisvc",)
CATEGORIES = ("fusioninfer",)

MAX_ROLES = 16


class ComponentType(StrEnum):
    """The semantic role of a component in the serving topology."""

    WORKER = "worker"
    PREFILLER = "prefiller"
    DECODER = "decoder"
    ROUTER = "router"


class Engine(StrEnum):
    """The inference engine in the serving container; `auto` detects it from image/command."""

    AUTO = "auto"
    VLLM = "vllm"
    SGLANG = "sglang"


class MultinodeBackend(StrEnum):
    """How the nodes of one multi-node replica find each other (vLLM only; SGLang has one way)."""

    RAY = "ray"
    MP = "mp"


PERCENT = re.compile(r"[0-9]+%")


def _int_or_percent(value: object) -> int | str:
    """An IntOrString as a Deployment's rolling-update budget takes it: an integer >= 0 or "N%".

    One validator rather than an `int | str` union, so that a wrong value gets one message that
    names both forms (a union reports only its first member's complaint), and so that the
    apiserver's own rules hold here too: no negative numbers, no digits-only strings ("5").
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise PydanticCustomError("greater_than_equal", "must be >= 0", {"ge": 0})
        return value
    if isinstance(value, str) and PERCENT.fullmatch(value):
        return value
    raise PydanticCustomError("int_or_percent", 'must be an integer >= 0 or a percentage such as "25%"')


IntOrString = Annotated[
    int | str,
    PlainValidator(_int_or_percent),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": f"^{PERCENT.pattern}$"}]}
    ),
]


class Multinode(SpecModel):
    """Distributed serving of one replica across several nodes (a LeaderWorkerSet group)."""

    node_count: Annotated[StrictInt, Field(ge=1, le=64, description="Pods (nodes) per replica, leader included.")]
    backend: MultinodeBackend | None = Field(
        default=None,
        description="vLLM distributed executor across nodes: `ray` (default) or `mp` (multiprocessing).",
    )
    rewrite_command: StrictBool | None = Field(
        default=None,
        description=(
            "Rewrite the serving container's command for leader/worker start-up (default true). "
            "Set false when the template already carries the full multi-node command."
        ),
    )


class RolloutStrategy(SpecModel):
    """Rolling-update budget of a role's workload. Defaults suit clusters with no spare GPU."""

    max_surge: IntOrString | None = Field(default=None, description="Default 0: never needs a spare GPU.")
    max_unavailable: IntOrString | None = Field(default=None, description="Default 1.")
    partition: Annotated[StrictInt, Field(ge=0)] | None = Field(
        default=None, description="Multi-node roles only: groups with index below this keep the old template."
    )


class TemplateMetadata(BaseModel):
    """The part of a pod template's metadata that we keep and merge into what we generate."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    labels: dict[str, str] | None = Field(
        default=None, description="Labels merged into the pods (keys under fusioninfer.io/ are reserved)."
    )
    annotations: dict[str, str] | None = Field(default=None, description="Annotations merged into the pods.")


class PodTemplate(BaseModel):
    """A PodTemplateSpec. `spec` is a PodSpec kept as-is (validated by the apiserver when applied)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    metadata: TemplateMetadata | None = None
    spec: dict[str, Any] | None = Field(
        default=None,
        description=(
            "A Kubernetes PodSpec (containers, volumes, nodeSelector, tolerations, ...), kept as written and "
            "validated by the apiserver when the workload is applied. The first container that runs vLLM or "
            "SGLang serves the API."
        ),
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Role(SpecModel):
    """A logical component of the serving topology, named by the user, typed by componentType."""

    name: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        description="Role name, unique in the service (DNS-1035 label); part of every child's name."
    )
    component_type: ComponentType
    replicas: Annotated[StrictInt, Field(ge=0, le=10000)] | None = Field(
        default=None, description="Independent instances of this role. Default 1."
    )
    role_replicas: Annotated[StrictInt, Field(ge=0, le=10000)] | None = Field(
        default=None, description="Deprecated alias of `replicas`; set only one."
    )
    pod_replicas: Annotated[StrictInt, Field(ge=1, le=64)] | None = Field(
        default=None, description="Deprecated alias of `multinode.nodeCount`; set only one."
    )
    multinode: Multinode | None = None
    engine: Engine | None = Field(default=None, description="Inference engine; detected when absent or `auto`.")
    rollout: RolloutStrategy | None = None
    template: PodTemplate | None = None
    # Serving fields (api/model_spec.py), expanded into the serving container (api/expand.py).
    model: ModelSpec | None = Field(default=None, description="Overrides spec.model field by field.")
    engine_args: dict[Annotated[str, Field(pattern=ENGINE_ARG_KEY)], EngineArgValue] | None = Field(
        default=None,
        description="Engine flags without the leading --: key -> value (true: the bare flag; false: --no-key).",
    )
    speculative_decoding: SpeculativeDecoding | None = None
    autoscaling: Autoscaling | None = None
    resources: dict[str, Any] | None = Field(
        default=None,
        description="Resources of the serving container (limits/requests), e.g. nvidia.com/gpu.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    # Router-only fields.
    strategy: RoutingStrategy | None = Field(default=None, description="Router only. Default prefix-cache.")
    httproute: dict[str, Any] | None = Field(
        default=None,
        description="Router only. An HTTPRoute spec fragment (parentRefs, hostnames, rules).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    endpoint_picker_config: str | None = Field(
        default=None, description="Router only. Raw EndpointPickerConfig YAML that replaces the generated one."
    )
    endpoint_picker: EndpointPicker | None = None
    gateway: GatewayConfig | None = None

    # Derived values; the only place the defaults and the seed aliases are resolved.
    @property
    def effective_replicas(self) -> int:
        if self.replicas is not None:
            return self.replicas
        if self.role_replicas is not None:
            return self.role_replicas
        return 1

    @property
    def node_count(self) -> int:
        if self.multinode is not None:
            return self.multinode.node_count
        if self.pod_replicas is not None:
            return self.pod_replicas
        return 1

    @property
    def autoscaled(self) -> bool:
        """The autoscaler (or ratioTo) owns the replica count, not `replicas`."""
        return self.autoscaling is not None and not self.is_router

    @property
    def is_multinode(self) -> bool:
        return self.node_count >= 2

    @property
    def is_router(self) -> bool:
        return self.component_type is ComponentType.ROUTER

    @property
    def effective_strategy(self) -> RoutingStrategy:
        return self.strategy or DEFAULT_STRATEGY


ROUTER_ONLY_FIELDS: tuple[str, ...] = ("strategy", "httproute", "endpointPickerConfig", "endpointPicker", "gateway")
SERVING_ONLY_FIELDS: tuple[str, ...] = (
    "multinode",
    "podReplicas",
    "engine",
    "rollout",
    "model",
    "engineArgs",
    "speculativeDecoding",
    "resources",
    "autoscaling",
)


class GangScheduling(StrEnum):
    """Whether roles that must start together get one Volcano PodGroup."""

    AUTO = "Auto"
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class SchedulingStrategy(SpecModel):
    """Pod-level scheduling for every serving role."""

    scheduler_name: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="Scheduler for serving pods, e.g. `volcano` (which also turns on gang scheduling)."
    )
    queue: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="Volcano queue of the PodGroup."
    )
    priority_class_name: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None, description="PriorityClass of the PodGroup and its pods."
    )
    gang_scheduling: GangScheduling | None = Field(
        default=None,
        description=(
            "Auto (default): a PodGroup for P/D or multi-node services when Volcano is installed or requested. "
            "Enabled: always (Volcano required). Disabled: never."
        ),
    )


class InferenceServiceSpec(SpecModel):
    """What to serve: the roles (workers, prefillers/decoders, one router) and how to schedule them."""

    roles: Annotated[list[Role], Field(min_length=1, max_length=MAX_ROLES)] = Field(
        description=(
            "The components: one worker (monolithic) or prefillers and decoders (disaggregated), and at most one "
            "router."
        )
    )
    model: ModelSpec | None = Field(default=None, description="The default model of every serving role.")
    scheduling_strategy: SchedulingStrategy | None = None


class ObjectMeta(BaseModel):
    """The metadata fields we read; everything else is kept untouched."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class InferenceService(BaseModel):
    """One LLM service: its roles, how they are scheduled, and what the operator observed."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    api_version: Literal["fusioninfer.io/v1alpha1"] = Field(default="fusioninfer.io/v1alpha1", alias="apiVersion")
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: ObjectMeta
    spec: InferenceServiceSpec
    status: InferenceServiceStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def roles(self) -> list[Role]:
        return self.spec.roles

    @property
    def serving_roles(self) -> list[Role]:
        return [r for r in self.spec.roles if not r.is_router]

    @property
    def router(self) -> Role | None:
        return next((r for r in self.spec.roles if r.is_router), None)

    @property
    def is_disaggregated(self) -> bool:
        types = {r.component_type for r in self.spec.roles}
        return ComponentType.PREFILLER in types and ComponentType.DECODER in types
