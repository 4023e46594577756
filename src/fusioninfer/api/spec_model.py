"""The base every InferenceService API struct shares: camelCase on the wire, unknown fields
rejected, and strict JSON types.

One definition, so that the spec parts (`v1alpha1`, `router_spec`, `model_spec`,
`autoscaling_spec`) cannot drift apart in how a document is read: parsing is by alias only
(the CRD knows only camelCase), and a field the CRD would prune is an error here.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Base for our own API structs: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
    )


# Strict JSON types: what the CRD's `type: integer` / `type: boolean` accepts, nothing coerced.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
StrictFloat = Annotated[float, Strict()]
