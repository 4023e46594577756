"""Names of the child objects, and the length budget each must fit.

Naming is part of the API contract: a user finds `{service}-{role}` with `kubectl get`, and
validation must reject a spec whose children could not be created. So the builders and the
validator use these functions and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MAX = 63
# A multi-node role becomes a LeaderWorkerSet whose groups are StatefulSets named
# `{lws}-{groupIndex}`; the StatefulSet controller labels pods with
# `controller-revision-hash: {sts}-{10 chars}`, a label value capped at 63. Reserving five
# digits of group index keeps every group valid: 63 - len("-12345") - len("-") - 10 = 46.
MULTINODE_NAME_MAX = 46


def workload_name(service: str, role: str) -> str:
    """Deployment or LeaderWorkerSet of a serving role (also the LWS headless Service)."""
    return f"{service}-{role}"


def epp_name(service: str) -> str:
    """Endpoint picker ServiceAccount, Role, RoleBinding, Deployment and Service."""
    return f"{service}-epp"


def epp_config_name(service: str) -> str:
    """The endpoint picker's configuration (EndpointPickerConfig YAML)."""
    return f"{service}-epp-config"


def pool_name(service: str) -> str:
    return f"{service}-pool"


def route_name(service: str) -> str:
    return f"{service}-route"


def gateway_name(service: str) -> str:
    return f"{service}-gateway"


def podgroup_name(service: str) -> str:
    return service


@dataclass(frozen=True)
class NameBudget:
    """A child name that must be a DNS-1035 label of at most `limit` characters."""

    what: str
    name: str
    limit: int

    @property
    def fits(self) -> bool:
        return len(self.name) <= self.limit


def service_level_names(service: str, *, router: bool = True, gateway: bool = True) -> list[NameBudget]:
    """Names made from the service's name alone, each held to 63 characters, for the children
    this service has (`router`: the picker objects and the InferencePool; `gateway`: a Gateway).

    The `fusioninfer.io/service` label on every child carries the name itself, so it is always
    there. Most of the rest must be DNS-1035 labels (Services, label values). The ConfigMap could
    legally be longer, but the contract is that every child name fits 63 (issue 2), so that a
    name a person sees in one place (`kubectl get`, a label, an event) is never cut in another.
    It is the longest suffix, so it alone sets the longest service name with a router (52); it
    is listed last so that a longer name is reported against the first budget it breaks.
    """
    budgets: list[NameBudget] = []
    if router:
        budgets += [
            NameBudget("endpoint picker Service", epp_name(service), DNS1035_MAX),
            NameBudget("InferencePool", pool_name(service), DNS1035_MAX),
        ]
    if router and gateway:
        budgets.append(NameBudget("Gateway", gateway_name(service), DNS1035_MAX))
    if router:
        budgets.append(NameBudget("endpoint picker ConfigMap", epp_config_name(service), DNS1035_MAX))
    budgets.append(NameBudget("label value fusioninfer.io/service", service, DNS1035_MAX))
    return budgets


def role_name_budget(service: str, role: str, multinode: bool) -> NameBudget:
    name = workload_name(service, role)
    if multinode:
        return NameBudget("LeaderWorkerSet", name, MULTINODE_NAME_MAX)
    return NameBudget("Deployment", name, DNS1035_MAX)
