"""Pure builders: a validated InferenceService in, the full desired set of child manifests out.

`build()` is the one entry point used by `fusioninfer render` and by the controller. Each
child kind has its own module; each exposes `build(ctx) -> list[Manifest]`.

Layers, each importing only from the ones below it (`tests/unit/test_import_graph.py` keeps
the package free of import cycles):

1. Shared facts: `context`, `kinds`, `resources`, `engine`, `epp_config`, `refs`, `workload`,
   `health` (probe bodies), `podparts` (PodPart, the user's template), `ports` (who listens where).
2. The pod decorators, each adding one concern to a serving pod and none importing another:
   `pd` (with its SGLang half `pd_sglang`), `gang`, `multinode`, `engine_flags`, `probes`.
3. `podtemplate`: the decorators applied in order.
4. The emitted kinds: `deployment`, `leaderworkerset`, `podgroup`, `autoscaler`, `epp` (the
   picker's objects), `inferencepool`, `gateway`, `httproute`; `router` gathers the routing ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.builders import autoscaler, deployment, leaderworkerset, podgroup, router
from fusioninfer.builders.context import BuildContext, BuildOptions, Capabilities, Manifest, Notice
from fusioninfer.builders.kinds import sort_key

__all__ = ["BuildOptions", "BuildResult", "Capabilities", "Manifest", "Notice", "build"]

_BUILDERS = (podgroup.build, deployment.build, leaderworkerset.build, autoscaler.build, router.build)


@dataclass(frozen=True)
class BuildResult:
    """The desired children, in apply order, and what could not be built (and why)."""

    objects: list[Manifest]
    notices: list[Notice]


def build(isvc: InferenceService, options: BuildOptions | None = None) -> BuildResult:
    ctx = BuildContext(isvc, options or BuildOptions())
    objects: list[Manifest] = []
    for builder in _BUILDERS:
        objects.extend(builder(ctx))
    objects.sort(key=sort_key)
    return BuildResult(objects=objects, notices=list(ctx.notices))
