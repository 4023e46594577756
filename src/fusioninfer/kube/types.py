"""The one spelling of "a Kubernetes object as JSON".

Objects travel through the operator as plain dicts (what the apiserver sends, what the
builders emit, what server-side apply takes): no typed client models, so a field the models
do not know about can never be dropped on the way. `Obj` names that, once; it was defined
separately in six modules before, which made it look as if they meant different things.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object (or any part of one) as decoded JSON."""

ObjList = list[Obj]
"""A list of objects; also usable where a class's own `list` method shadows the builtin."""
