"""Semantic validation of an InferenceService, beyond what the schema types can say.

Every rule reports the exact field path. The same rules are expressed as CEL in the CRD
(enforced by apiservers >= 1.25); this module is what enforces them everywhere else: in
`fusioninfer validate`, in `render`, and in the controller (a `Valid=False` condition).

Here: the header, names, the topology and which fields each kind of role may carry; the rules
of one part of a role or service live beside it (`router_rules`, `template_rules`,
`rollout_rules`, `engine_rules`, `pd_rules`, `autoscaling_rules`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import ValidationError

from fusioninfer.api import naming
from fusioninfer.api.autoscaling_rules import check_autoscaling
from fusioninfer.api.engine_rules import check_parallelism_fits_the_gpus, check_vllm_multinode_backend
from fusioninfer.api.errors import FieldError, InvalidSpec, from_pydantic, quote
from fusioninfer.api.expand import expand
from fusioninfer.api.pd_rules import check_nixl_tensor_parallel, check_sglang_disaggregation
from fusioninfer.api.rollout_rules import check_rollout
from fusioninfer.api.router_rules import check_router
from fusioninfer.api.template_rules import check_serving_template, check_template_labels
from fusioninfer.api.v1alpha1 import (
    API_VERSION,
    KIND,
    ComponentType,
    Engine,
    GangScheduling,
    InferenceService,
    Role,
)

NESTED_TOO_DEEPLY = "nested too deeply"
TOPOLOGY_HINT = "a service has exactly one worker role (monolithic) or prefiller and decoder roles (disaggregated)"


def parse(obj: Any) -> InferenceService:
    """Parse and fully validate one InferenceService given as a decoded JSON/YAML object.

    Raises InvalidSpec with every problem found (type errors first; semantic rules only run
    on a document that has the right shape, as their messages would otherwise mislead).
    """
    if not isinstance(obj, dict):
        raise InvalidSpec([FieldError("", f"an InferenceService must be a mapping, got {type(obj).__name__}")])
    header = [
        error
        for error in (_check_header(obj, "apiVersion", API_VERSION), _check_header(obj, "kind", KIND))
        if error is not None
    ]
    if header:
        raise InvalidSpec(header)
    try:
        # By alias only: the CRD knows only the camelCase names, so `node_count` in a document
        # is an unknown field (a cluster would prune it), not a synonym of `nodeCount`.
        isvc = InferenceService.model_validate(obj, by_alias=True, by_name=False)
        # The serving fields become the containers they stand for; then every rule sees pods.
        isvc, errors = expand(isvc)
        errors += validate(isvc)
    except ValidationError as exc:
        raise InvalidSpec(from_pydantic(exc, model=InferenceService)) from None
    except RecursionError:
        # Absurdly nested values (in a pod spec, say): a clear error, never a traceback, for
        # the CLI and the controller alike.
        raise InvalidSpec([FieldError("", NESTED_TOO_DEEPLY)]) from None
    if errors:
        raise InvalidSpec(errors)
    return isvc


def _check_header(obj: dict[Any, Any], field: str, expected: str) -> FieldError | None:
    """apiVersion/kind, checked first: another kind's fields would only produce noise."""
    if obj.get(field) is None:
        return FieldError(field, "Required value")
    if obj[field] != expected:
        return FieldError(field, f"Unsupported value: {quote(obj[field])}: expected {quote(expected)}")
    return None


def validate(isvc: InferenceService) -> list[FieldError]:
    """Every semantic rule; an empty list means the service can be built."""
    errors: list[FieldError] = []
    errors += _check_service_name(isvc)
    errors += _check_role_names(isvc)
    errors += _check_topology(isvc)
    for index, role in enumerate(isvc.spec.roles):
        errors += _check_role(isvc, index, role)
    errors += _check_scheduling(isvc)
    errors += check_nixl_tensor_parallel(isvc)
    errors += check_sglang_disaggregation(isvc)
    errors += check_vllm_multinode_backend(isvc)
    errors += check_parallelism_fits_the_gpus(isvc)
    errors += check_autoscaling(isvc)
    return errors


def _check_service_name(isvc: InferenceService) -> list[FieldError]:
    name = isvc.metadata.name
    if not name:
        return [FieldError("metadata.name", "Required value")]
    if not naming.DNS1035_LABEL.fullmatch(name):
        return [
            FieldError(
                "metadata.name",
                f"Invalid value: {quote(name)}: must be a DNS-1035 label (lowercase letters, digits and '-', "
                "starting with a letter and ending with a letter or digit), as it names Services",
            )
        ]
    return [
        FieldError(
            "metadata.name",
            f"Too long: {len(name)} characters: the {budget.what} name {quote(budget.name)} would exceed "
            f"{budget.limit} characters",
        )
        for budget in naming.service_level_names(
            name, router=isvc.router is not None, gateway=isvc.router is not None and isvc.router.gateway is not None
        )
        if not budget.fits
    ][:1]


def _check_role_names(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, role in enumerate(isvc.spec.roles):
        path = f"spec.roles[{index}].name"
        if not naming.DNS1035_LABEL.fullmatch(role.name):
            errors.append(
                FieldError(
                    path,
                    f"Invalid value: {quote(role.name)}: must be a DNS-1035 label (lowercase letters, digits and '-', "
                    "starting with a letter and ending with a letter or digit)",
                )
            )
        elif role.name in seen:
            errors.append(FieldError(path, f"Duplicate value: {quote(role.name)}: role names must be unique"))
        seen.add(role.name)
        # A router's objects are named after the service (`{service}-epp`), not the role.
        if isvc.metadata.name and naming.DNS1035_LABEL.fullmatch(role.name) and not role.is_router:
            budget = naming.role_name_budget(isvc.metadata.name, role.name, role.is_multinode)
            if not budget.fits:
                errors.append(
                    FieldError(
                        path,
                        f"Too long: the {budget.what} name {quote(budget.name)} ({len(budget.name)} characters) "
                        f"would exceed {budget.limit} characters; shorten the role or service name",
                    )
                )
    return errors


def _check_topology(isvc: InferenceService) -> list[FieldError]:
    errors: list[FieldError] = []
    counts = Counter(r.component_type for r in isvc.spec.roles)
    indexes: dict[ComponentType, list[int]] = {t: [] for t in ComponentType}
    for i, role in enumerate(isvc.spec.roles):
        indexes[role.component_type].append(i)

    for extra in indexes[ComponentType.ROUTER][1:]:
        errors.append(FieldError(f"spec.roles[{extra}].componentType", "Too many: at most one router role"))

    workers = counts[ComponentType.WORKER]
    prefillers = counts[ComponentType.PREFILLER]
    decoders = counts[ComponentType.DECODER]
    if workers:
        for extra in indexes[ComponentType.WORKER][1:]:
            errors.append(
                FieldError(
                    f"spec.roles[{extra}].componentType",
                    'Invalid value: "worker": a monolithic service has exactly one worker role',
                )
            )
        for i in indexes[ComponentType.PREFILLER] + indexes[ComponentType.DECODER]:
            errors.append(
                FieldError(
                    f"spec.roles[{i}].componentType",
                    f"Invalid value: {quote(isvc.spec.roles[i].component_type.value)}: {TOPOLOGY_HINT}, not both",
                )
            )
    elif prefillers or decoders:
        missing = [t for t, n in (("prefiller", prefillers), ("decoder", decoders)) if not n]
        if missing:
            errors.append(
                FieldError(
                    "spec.roles",
                    f"Required value: a disaggregated service needs at least one prefiller and one decoder "
                    f"role (missing: {', '.join(missing)})",
                )
            )
    else:
        errors.append(FieldError("spec.roles", f"Required value: {TOPOLOGY_HINT}"))
    return errors


def _check_role(isvc: InferenceService, index: int, role: Role) -> list[FieldError]:
    prefix = f"spec.roles[{index}]"
    errors: list[FieldError] = []
    set_fields = role.model_fields_set

    def forbid(field: str, reason: str) -> None:
        errors.append(FieldError(f"{prefix}.{field}", f"Forbidden: {reason}"))

    if role.is_router:
        # The endpoint picker Deployment always uses Recreate (two pickers must not share a
        # pool), so a rollout here would be silently ignored.
        for attr, alias in (
            ("multinode", "multinode"),
            ("pod_replicas", "podReplicas"),
            ("engine", "engine"),
            ("rollout", "rollout"),
            ("model", "model"),
            ("engine_args", "engineArgs"),
            ("speculative_decoding", "speculativeDecoding"),
            ("resources", "resources"),
            ("autoscaling", "autoscaling"),
        ):
            if attr in set_fields and getattr(role, attr) is not None:
                forbid(alias, "not allowed on a router role")
        errors += check_router(isvc, prefix, role)
    else:
        for attr, alias in (
            ("strategy", "strategy"),
            ("httproute", "httproute"),
            ("endpoint_picker_config", "endpointPickerConfig"),
            ("endpoint_picker", "endpointPicker"),
            ("gateway", "gateway"),
        ):
            if getattr(role, attr) is not None:
                forbid(alias, "only allowed on a router role")
        errors += check_serving_template(prefix, role)

    if role.replicas is not None and role.role_replicas is not None:
        forbid("roleReplicas", "deprecated alias of replicas; set only replicas")
    if role.multinode is not None and role.pod_replicas is not None:
        forbid("podReplicas", "deprecated alias of multinode.nodeCount; set only multinode")
    if role.multinode is not None and role.multinode.backend is not None and role.engine is Engine.SGLANG:
        forbid("multinode.backend", "only applies to vLLM; SGLang has a single multi-node mode")
    if role.rollout is not None and not role.is_router:
        errors += check_rollout(prefix, role)
    errors += check_template_labels(prefix, role)
    return errors


def _check_scheduling(isvc: InferenceService) -> list[FieldError]:
    strategy = isvc.spec.scheduling_strategy
    if strategy is None:
        return []
    if (
        strategy.gang_scheduling is GangScheduling.ENABLED
        and strategy.scheduler_name is not None
        and strategy.scheduler_name != "volcano"
    ):
        return [
            FieldError(
                "spec.schedulingStrategy.gangScheduling",
                f'Invalid value: "Enabled": gang scheduling needs schedulerName "volcano", not '
                f"{quote(strategy.scheduler_name)}",
            )
        ]
    return []
