"""The operator's ClusterRole, derived from what the code touches (never written by hand).

Three sources, each read from the code that uses the permission, so a new child kind or a
new picker permission changes the generated role (and `tests/unit/test_rbac.py` fails until
`make manifests` is run):

1. `OPERATOR_NEEDS`: the operator's own requests: the InferenceService informer and its
   status subresource, the CRD informer (prerequisite discovery), the pod informer (status),
   Events and the leader-election Lease;
2. `CHILD_KINDS` (`builders/kinds.py`): every child kind is watched (list/watch), applied
   server-side (patch; an apply that creates the object is also authorized as `create`) and
   pruned (delete);
3. the endpoint picker's Role (`builders/epp.py`): Kubernetes lets a subject create or update a
   Role, or bind one, only when the subject already holds every permission in it (RBAC's
   escalation check), so the operator must hold everything it grants the picker, in the
   most-privileged (high-availability) variant.

Leases and Events are granted cluster-wide rather than in a separate leader-election Role in
the operator's namespace because of (3): the picker Role in every service's namespace grants
them, so the operator must hold them there too.

Least privilege: no `get` (every read is from an informer cache), no `update` on children
(server-side apply is a `patch`), nothing on Secrets, no wildcards. `tests/integration/test_rbac.py`
runs the operator with exactly this role, so a verb too few fails there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from fusioninfer.api.v1alpha1 import GROUP, PLURAL, Role
from fusioninfer.builders import epp
from fusioninfer.builders.kinds import CHILD_KINDS

CLUSTER_ROLE_NAME = "fusioninfer-manager-role"
RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
COMMON_LABELS = {"app.kubernetes.io/name": "fusioninfer", "app.kubernetes.io/component": "rbac"}

# Canonical verb order (kubectl's), so the generated file is stable and reads naturally.
VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")

Rule = dict[str, list[str]]


@dataclass(frozen=True)
class Need:
    """A permission the operator needs, with the code that needs it (the reason is documentation
    for reviewers and for `fusioninfer rbac --explain`)."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


WATCH = ("list", "watch")

OPERATOR_NEEDS: tuple[Need, ...] = (
    Need(GROUP, (PLURAL,), WATCH, "InferenceService informer (controller/operator.py)"),
    Need(GROUP, (f"{PLURAL}/status",), ("patch",), "status written by server-side apply (controller/reconciler.py)"),
    # Children carry ownerReferences with blockOwnerDeletion; with the OwnerReferencesPermissionEnforcement
    # admission plugin (OpenShift, hardened clusters) setting that needs update on the owner's finalizers.
    Need(GROUP, (f"{PLURAL}/finalizers",), ("update",), "blockOwnerDeletion on children (builders/context.py)"),
    Need("apiextensions.k8s.io", ("customresourcedefinitions",), WATCH, "prerequisite CRDs (controller/discovery.py)"),
    Need("", ("pods",), WATCH, "pod informer for per-role status (controller/operator.py)"),
    Need("", ("events",), ("create",), "Events about InferenceServices (controller/events.py)"),
    Need("coordination.k8s.io", ("leases",), ("get", "create", "update"), "leader election (runtime/leader.py)"),
)

# The apiserver authorizes a server-side apply that creates its object as `create` too (the
# 403 then has an empty reason), so `patch` alone only ever updates.
CHILD_VERBS = ("list", "watch", "create", "patch", "delete")


def child_needs() -> list[Need]:
    """Watch (informers), server-side apply (create + patch) and prune (delete) every child kind."""
    return [
        Need(kind.group, (kind.plural,), CHILD_VERBS, f"{kind.kind} children (builders/kinds.py)")
        for kind in CHILD_KINDS
    ]


def picker_rules() -> list[Rule]:
    """Every rule any endpoint picker Role can carry: the union of the plain and the HA variant."""
    variants = [
        Role.model_validate({"name": "router", "componentType": "router", "endpointPicker": {"replicas": replicas}})
        for replicas in (1, 2)
    ]
    assert not epp.high_availability(variants[0])
    assert epp.high_availability(variants[1])
    unique: list[Rule] = []
    for rule in (rule for role in variants for rule in epp.rbac_rules(role)):
        if rule not in unique:
            unique.append(rule)
    return unique


def _needs_of(rules: Iterable[Mapping[str, Sequence[str]]], why: str) -> list[Need]:
    return [
        Need(group, tuple(rule["resources"]), tuple(rule["verbs"]), why)
        for rule in rules
        for group in rule.get("apiGroups", [])
    ]


def all_needs() -> list[Need]:
    return [*OPERATOR_NEEDS, *child_needs(), *_needs_of(picker_rules(), "granted to the endpoint picker (epp.py)")]


def _verb_key(verb: str) -> tuple[int, str]:
    return (VERB_ORDER.index(verb) if verb in VERB_ORDER else len(VERB_ORDER), verb)


def merge(needs: Iterable[Need]) -> list[Rule]:
    """One rule per (API group, verb set), resources sorted: the smallest stable rule list."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for need in needs:
        for resource in need.resources:
            verbs[(need.group, resource)].update(need.verbs)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), vs in verbs.items():
        grouped[(group, tuple(sorted(vs, key=_verb_key)))].append(resource)
    rules = [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(vs)}
        for (group, vs), resources in grouped.items()
    ]
    return sorted(rules, key=lambda r: (r["apiGroups"][0], r["resources"]))


def operator_rules() -> list[Rule]:
    """The ClusterRole's rules."""
    return merge(all_needs())


def permissions(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """Expand rules into (group, resource, verb) triples (no wildcards: we never generate them)."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def missing(held: Iterable[Mapping[str, Any]], wanted: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """What `wanted` grants that `held` does not: non-empty means RBAC's escalation check refuses
    a holder of `held` to create a Role with `wanted` (wildcards in `held` honoured)."""

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(
            (group in (r.get("apiGroups") or []) or "*" in (r.get("apiGroups") or []))
            and (resource in (r.get("resources") or []) or "*" in (r.get("resources") or []))
            and (verb in (r.get("verbs") or []) or "*" in (r.get("verbs") or []))
            for r in held_list
        )

    held_list = list(held)
    return {p for p in permissions(wanted) if not allowed(*p)}


def cluster_role(name: str = CLUSTER_ROLE_NAME, rules: list[Rule] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": dict(COMMON_LABELS)},
        "rules": operator_rules() if rules is None else rules,
    }


HEADER = "# Generated by `fusioninfer rbac` (make manifests) from the code; do not edit.\n"


def cluster_role_yaml() -> str:
    """config/rbac/role.yaml."""
    return HEADER + yaml.safe_dump(cluster_role(), sort_keys=False, width=120)


def rules_yaml() -> str:
    """The bare rule list (the Helm chart's ClusterRole includes it)."""
    return HEADER + yaml.safe_dump(operator_rules(), sort_keys=False, width=120)


def explain() -> str:
    """Every permission with the code that needs it."""
    lines = []
    for need in all_needs():
        group = need.group or "core"
        lines.append(f"{group}/{','.join(need.resources)}: {','.join(need.verbs)}  # {need.why}")
    return "\n".join(lines) + "\n"
