"""Semantic validation of an InferenceService, beyond what the schema types can say.

Every rule reports the exact field path. The same rules are expressed as CEL in the CRD
(enforced by apiservers >= 1.25); this module is what enforces them everywhere else: in
`fusioninfer validate`, in `render`, and in the controller (a `Valid=False` condition).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from pydantic import ValidationError

from fusioninfer.api import naming
from fusioninfer.api.autoscaling_rules import check_autoscaling
from fusioninfer.api.durations import duration_ms
from fusioninfer.api.engine_rules import check_parallelism_fits_the_gpus, check_vllm_multinode_backend
from fusioninfer.api.errors import FieldError, InvalidSpec, from_pydantic, quote
from fusioninfer.api.expand import expand
from fusioninfer.api.labels import is_reserved
from fusioninfer.api.pd_rules import check_nixl_tensor_parallel, check_sglang_disaggregation
from fusioninfer.api.v1alpha1 import (
    API_VERSION,
    KIND,
    ComponentType,
    Engine,
    GangScheduling,
    InferenceService,
    Role,
    RoutingStrategy,
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
        errors += _check_router(isvc, prefix, role)
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
        errors += _check_serving_template(prefix, role)

    if role.replicas is not None and role.role_replicas is not None:
        forbid("roleReplicas", "deprecated alias of replicas; set only replicas")
    if role.multinode is not None and role.pod_replicas is not None:
        forbid("podReplicas", "deprecated alias of multinode.nodeCount; set only multinode")
    if role.multinode is not None and role.multinode.backend is not None and role.engine is Engine.SGLANG:
        forbid("multinode.backend", "only applies to vLLM; SGLang has a single multi-node mode")
    if role.rollout is not None and not role.is_router:
        errors += _check_rollout(prefix, role)
    errors += _check_template_labels(prefix, role)
    return errors


def _check_router(isvc: InferenceService, prefix: str, role: Role) -> list[FieldError]:
    errors: list[FieldError] = []
    if role.strategy is RoutingStrategy.PD_DISAGGREGATION and not isvc.is_disaggregated:
        errors.append(
            FieldError(
                f"{prefix}.strategy",
                'Invalid value: "pd-disaggregation": requires prefiller and decoder roles',
            )
        )
    if role.endpoint_picker_config is not None:
        errors += _check_epp_config(f"{prefix}.endpointPickerConfig", role.endpoint_picker_config)
        if role.endpoint_picker is not None and role.endpoint_picker.plugins is not None:
            errors.append(
                FieldError(
                    f"{prefix}.endpointPicker.plugins",
                    "Forbidden: may not be combined with endpointPickerConfig, which replaces the whole config",
                )
            )
    plugins = role.endpoint_picker.plugins if role.endpoint_picker else None
    if plugins is not None and not any(toggle is not None and toggle.enabled for toggle in plugins.__dict__.values()):
        errors.append(FieldError(f"{prefix}.endpointPicker.plugins", "Required value: enable at least one scorer"))
    if role.httproute is not None:
        errors += _check_httproute(f"{prefix}.httproute", role.httproute)
    if role.template is not None and role.template.spec and role.template.spec.get("containers"):
        errors.append(
            FieldError(
                f"{prefix}.template.spec.containers",
                "Forbidden: the router's containers are generated; use endpointPicker to change the image or flags",
            )
        )
    return errors


def _check_epp_config(path: str, text: str) -> list[FieldError]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [FieldError(path, f"Invalid value: not valid YAML: {str(exc).splitlines()[0]}")]
    if not isinstance(doc, dict):
        return [FieldError(path, "Invalid value: must be a YAML mapping (an EndpointPickerConfig)")]
    errors = []
    if doc.get("kind") != "EndpointPickerConfig":
        errors.append(FieldError(path, 'Invalid value: kind must be "EndpointPickerConfig"'))
    allowed = {"apiVersion", "kind", "plugins", "schedulingProfiles", "saturationDetector", "featureGates", "data"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        # The picker decodes its config strictly: an unknown key stops it at start-up.
        errors.append(
            FieldError(path, f"Invalid value: unknown top-level keys {unknown} (the picker would refuse them)")
        )
    plugins = doc.get("plugins")
    if plugins is not None and not isinstance(plugins, list):
        errors.append(FieldError(path, "Invalid value: plugins must be a list"))
    for i, plugin in enumerate(plugins if isinstance(plugins, list) else []):
        if not isinstance(plugin, dict) or not plugin.get("type"):
            errors.append(FieldError(path, f"Invalid value: plugins[{i}] needs a type"))
    # The builder reads the profiles to warn about weights the picker would crash on, so their
    # shape must hold; the picker itself would refuse anything else at start-up anyway.
    profiles = doc.get("schedulingProfiles")
    if profiles is not None and not isinstance(profiles, list):
        errors.append(FieldError(path, "Invalid value: schedulingProfiles must be a list"))
    for i, profile in enumerate(profiles if isinstance(profiles, list) else []):
        if not isinstance(profile, dict):
            errors.append(FieldError(path, f"Invalid value: schedulingProfiles[{i}] must be a mapping"))
        elif profile.get("plugins") is not None and not isinstance(profile["plugins"], list):
            errors.append(FieldError(path, f"Invalid value: schedulingProfiles[{i}].plugins must be a list"))
    return errors


def _check_httproute(path: str, route: dict[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, kind in (("parentRefs", list), ("hostnames", list), ("rules", list)):
        if key in route and not isinstance(route[key], kind):
            errors.append(FieldError(f"{path}.{key}", "Invalid value: must be a list"))
    refs = route.get("parentRefs")
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        if not isinstance(ref, dict) or not ref.get("name"):
            errors.append(FieldError(f"{path}.parentRefs[{i}].name", "Required value"))
    hostnames = route.get("hostnames")
    for i, hostname in enumerate(hostnames if isinstance(hostnames, list) else []):
        if not isinstance(hostname, str) or not hostname:
            errors.append(FieldError(f"{path}.hostnames[{i}]", f"Invalid value: {quote(hostname)}: must be a string"))
    rules = route.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            errors.append(FieldError(f"{path}.rules[{i}]", "Invalid value: must be an object"))
            continue
        if rule.get("backendRefs"):
            errors.append(
                FieldError(
                    f"{path}.rules[{i}].backendRefs",
                    "Forbidden: the backend is the service's InferencePool and is set by the operator",
                )
            )
        errors += _check_route_rule(f"{path}.rules[{i}]", rule)
    return errors


def _check_route_rule(path: str, rule: dict[str, Any]) -> list[FieldError]:
    """The parts of a rule the HTTPRoute builder reads and completes (matches' paths, timeouts)."""
    errors: list[FieldError] = []
    matches = rule.get("matches")
    if matches is not None and not isinstance(matches, list):
        errors.append(FieldError(f"{path}.matches", "Invalid value: must be a list"))
    for j, match in enumerate(matches if isinstance(matches, list) else []):
        if not isinstance(match, dict):
            errors.append(FieldError(f"{path}.matches[{j}]", "Invalid value: must be an object"))
        elif match.get("path") is not None and not isinstance(match["path"], dict):
            errors.append(FieldError(f"{path}.matches[{j}].path", "Invalid value: must be an object"))
    timeouts = rule.get("timeouts")
    if timeouts is not None and not isinstance(timeouts, dict):
        errors.append(FieldError(f"{path}.timeouts", "Invalid value: must be an object"))
    elif isinstance(timeouts, dict):
        for key in ("request", "backendRequest"):
            value = timeouts.get(key)
            if value is not None and (not isinstance(value, str) or duration_ms(value) is None):
                errors.append(
                    FieldError(
                        f"{path}.timeouts.{key}",
                        f'Invalid value: {quote(value)}: must be a duration string such as "300s"',
                    )
                )
        request, backend = duration_ms(timeouts.get("request")), duration_ms(timeouts.get("backendRequest"))
        if request and backend is not None and backend > request:
            errors.append(
                FieldError(
                    f"{path}.timeouts.backendRequest",
                    f"Invalid value: {quote(timeouts['backendRequest'])}: may not be longer than "
                    f"timeouts.request ({quote(timeouts['request'])})",
                )
            )
    return errors


def _check_serving_template(prefix: str, role: Role) -> list[FieldError]:
    template = role.template
    if template is None:
        return [
            FieldError(
                f"{prefix}.template",
                "Required value: a serving role needs a pod template or a model (its own or spec.model)",
            )
        ]
    spec = template.spec
    if not spec:
        return [FieldError(f"{prefix}.template.spec", "Required value: a serving role needs a pod spec")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [FieldError(f"{prefix}.template.spec.containers", "Required value: at least one container")]
    errors: list[FieldError] = []
    names: set[str] = set()
    for i, container in enumerate(containers):
        path = f"{prefix}.template.spec.containers[{i}]"
        if not isinstance(container, dict):
            errors.append(FieldError(path, "Invalid value: must be an object"))
            continue
        name = container.get("name")
        if not isinstance(name, str) or not name:
            errors.append(FieldError(f"{path}.name", "Required value"))
        elif name in names:
            errors.append(FieldError(f"{path}.name", f"Duplicate value: {quote(name)}"))
        else:
            names.add(name)
        if not isinstance(container.get("image"), str) or not container.get("image"):
            errors.append(FieldError(f"{path}.image", "Required value"))
        for key in ("command", "args"):
            value = container.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                errors.append(FieldError(f"{path}.{key}", "Invalid value: must be a list of strings"))
        errors += _check_ports(path, container.get("ports"))
    return errors


def _check_ports(path: str, ports: Any) -> list[FieldError]:
    """Container ports: the builders take the serving port (pool target, P/D sidecar) from here."""
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [FieldError(f"{path}.ports", "Invalid value: must be a list")]
    errors: list[FieldError] = []
    for j, port in enumerate(ports):
        port_path = f"{path}.ports[{j}]"
        if not isinstance(port, dict):
            errors.append(FieldError(port_path, "Invalid value: must be an object"))
            continue
        number = port.get("containerPort")
        if number is None:
            errors.append(FieldError(f"{port_path}.containerPort", "Required value"))
        elif not isinstance(number, int) or isinstance(number, bool):
            errors.append(
                FieldError(f"{port_path}.containerPort", f"Invalid value: {quote(number)}: must be an integer")
            )
        elif not 1 <= number <= 65535:
            errors.append(
                FieldError(
                    f"{port_path}.containerPort", f"Invalid value: {number}: must be between 1 and 65535, inclusive"
                )
            )
    return errors


def _check_rollout(prefix: str, role: Role) -> list[FieldError]:
    assert role.rollout is not None
    errors: list[FieldError] = []
    surge, unavailable = role.rollout.max_surge, role.rollout.max_unavailable
    if _is_zero(surge if surge is not None else 0) and _is_zero(unavailable if unavailable is not None else 1):
        errors.append(FieldError(f"{prefix}.rollout.maxUnavailable", "Invalid value: may not be 0 when maxSurge is 0"))
    if role.rollout.partition is not None and not role.is_multinode:
        errors.append(
            FieldError(f"{prefix}.rollout.partition", "Forbidden: only applies to multi-node roles (LeaderWorkerSet)")
        )
    for field, value in (("maxSurge", surge), ("maxUnavailable", unavailable)):
        if isinstance(value, str) and value.endswith("%") and int(value[:-1]) > 100:
            errors.append(FieldError(f"{prefix}.rollout.{field}", f"Invalid value: {quote(value)}: must be <= 100%"))
    if role.is_multinode and not errors:
        # LeaderWorkerSet's webhook scales percentages by replicas (maxUnavailable rounded down,
        # maxSurge up) and refuses the LWS when both come out 0: say so here, with the numbers.
        replicas = role.effective_replicas
        down = _scaled(unavailable if unavailable is not None else 1, replicas, round_up=False)
        up = _scaled(surge if surge is not None else 0, replicas, round_up=True)
        if replicas > 0 and down == 0 and up == 0:
            errors.append(
                FieldError(
                    f"{prefix}.rollout.maxUnavailable",
                    f"Invalid value: {quote(unavailable)}: rounds down to 0 of {replicas} replica group(s) while "
                    "maxSurge is 0, so the LeaderWorkerSet could never roll (its webhook refuses it); use an integer "
                    "or a larger percentage",
                )
            )
    return errors


def _scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent: an int as is, a percentage of `total`."""
    if isinstance(value, int):
        return value
    text = value.rstrip("%")
    if not text.isdigit():
        return 1  # malformed values are reported by the model's own validation
    share = int(text) * total
    return -(-share // 100) if round_up else share // 100


def _is_zero(value: int | str) -> bool:
    return value in (0, "0", "0%")


def _check_template_labels(prefix: str, role: Role) -> list[FieldError]:
    if role.template is None or role.template.metadata is None or not role.template.metadata.labels:
        return []
    return [
        FieldError(f"{prefix}.template.metadata.labels[{key}]", "Forbidden: reserved for the operator")
        for key in sorted(role.template.metadata.labels)
        if is_reserved(key)
    ]


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
