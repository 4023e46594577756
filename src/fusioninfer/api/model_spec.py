"""Say the model, not the container: the serving fields of `fusioninfer.io/v1alpha1`.

`spec.model` is the default for every serving role and a role's own `model` overrides it field
by field; `engineArgs`, `speculativeDecoding` and `resources` are per role. They expand into the
role's serving container (`api/expand.py`): a role with a model and no `template` gets a
container of the engine's pinned image; with a `template` they are merged into its serving
container, and anything the template says that contradicts a field is an error.
(Seed 003's `modelServer`, seed 004's `engineConfig` and `SpeculativeDecoding`, KServe's
`model` and `lora.adapters`.)
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from fusioninfer.api.spec_model import SpecModel

ENGINE_ARG_KEY = r"^[a-z0-9][a-z0-9-]*$"


class SecretKeyRef(SpecModel):
    """A key of a Secret in the service's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253)] = Field(description="The Secret's name.")
    key: Annotated[str, Field(min_length=1, max_length=253)] = Field(default="token", description="Default token.")


class LoraAdapter(SpecModel):
    """A LoRA adapter the engine loads at start-up; clients select it by `name` as their model."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = Field(
        description='The name clients send as "model" to use the adapter, e.g. sql-lora.'
    )
    source: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Hugging Face repository or a path in the container."
    )


class ModelSpec(SpecModel):
    """The model a serving role loads and the name clients ask for."""

    name: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="What the engine loads (a Hugging Face id or a path)."
    )
    served_name: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description='What clients send as "model". Default: name.'
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key with a Hugging Face token, as the HF_TOKEN env variable."
    )
    lora_adapters: Annotated[list[LoraAdapter], Field(max_length=64)] | None = Field(
        default=None, description="Adapters loaded at start-up (vLLM --lora-modules, SGLang --lora-paths)."
    )


EngineArgValue = StrictBool | StrictInt | StrictFloat | Annotated[str, Field(max_length=4096)]


class SpeculativeDecoding(SpecModel):
    """Speculative decoding: a draft model (or another method) proposes tokens the model verifies."""

    method: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")] = Field(
        default="draft_model",
        description="draft_model (a separate draft model), or the engine's other methods: eagle, eagle3, ngram, ...",
    )
    draft_model: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="The draft (or EAGLE head) model; required for draft_model and eagle methods."
    )
    num_speculative_tokens: Annotated[StrictInt, Field(ge=1, le=64)] = Field(
        default=4, description="Tokens proposed per step (1-64). Default 4."
    )


def merged_model(service: ModelSpec | None, role: ModelSpec | None) -> ModelSpec | None:
    """The role's model: its own fields over the service's."""
    if service is None or role is None:
        return role or service
    values: dict[str, Any] = {**service.model_dump(exclude_none=True), **role.model_dump(exclude_none=True)}
    return ModelSpec.model_validate(values)


ROLE_SERVING_FIELDS = ("model", "engineArgs", "speculativeDecoding", "resources")
