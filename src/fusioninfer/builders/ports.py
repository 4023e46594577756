"""Where each pod of a service listens: the pool port, and the engine's own port behind the
P/D routing sidecar.

Facts, not decorations: the P/D wiring (`pd`), the probes (`probes`, `multinode`) and the
InferencePool all need the same answer, so it lives below all of them and none of them has to
import another for it.
"""

from __future__ import annotations

from fusioninfer.api.v1alpha1 import ComponentType, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders.context import BuildContext
from fusioninfer.builders.podparts import PodPart

# Where the decode engine listens once the sidecar owns the pool port (llm-d's own layout).
DECODE_INTERNAL_PORT = 8200
DEFAULT_POOL_PORT = 8000


def serves_http(part: PodPart) -> bool:
    """Single-node pods and multi-node leaders serve the API; multi-node workers only compute."""
    return part is not PodPart.WORKER


def pool_port_roles(ctx: BuildContext) -> list[Role]:
    """The roles whose engine port the InferencePool targets.

    In a disaggregated service decode pods expose the routing sidecar on whatever port the pool
    uses, so only the prefillers' engine ports count.
    """
    roles = ctx.isvc.serving_roles
    if ctx.isvc.is_disaggregated:
        roles = [r for r in roles if r.component_type is ComponentType.PREFILLER]
    return roles


def pool_port(ctx: BuildContext) -> int:
    """The one port every HTTP-serving pod of the service answers on (the pool's targetPort).

    The first role's serving port wins when roles disagree; the router builder reports that.
    """
    roles = pool_port_roles(ctx)
    if not roles:
        return DEFAULT_POOL_PORT
    return engines.serving_container(roles[0]).port


def decode_internal_port(ctx: BuildContext) -> int:
    port = pool_port(ctx)
    return DECODE_INTERNAL_PORT if port != DECODE_INTERNAL_PORT else DECODE_INTERNAL_PORT + 1


def has_routing_sidecar(ctx: BuildContext, role: Role, part: PodPart) -> bool:
    return ctx.isvc.is_disaggregated and role.component_type is ComponentType.DECODER and serves_http(part)


def engine_port(ctx: BuildContext, role: Role, part: PodPart) -> int:
    """Where the engine itself listens in `part` of `role` once decorated.

    Equal to `engine.serving_container(role).port`, except on decode pods of a P/D service that
    serve HTTP: there the routing sidecar owns the pool port and the engine sits behind it.
    Probes meant to check the engine (not the sidecar) must use this port.
    """
    if has_routing_sidecar(ctx, role, part):
        return decode_internal_port(ctx)
    return engines.serving_container(role).port
