"""Rules of a router role: its strategy, the endpoint picker's raw config, the HTTPRoute fragment.

The picker decodes its config strictly and stops at start-up on anything it does not know; the
HTTPRoute builder completes the user's fragment (the backend, the timeouts). Both would fail
far from the spec, in a pod's log or a Gateway's status; refused here with the field path.
"""

from __future__ import annotations

from typing import Any

import yaml

from fusioninfer.api.durations import duration_ms
from fusioninfer.api.errors import FieldError, quote
from fusioninfer.api.router_spec import RoutingStrategy
from fusioninfer.api.v1alpha1 import InferenceService, Role


def check_router(isvc: InferenceService, prefix: str, role: Role) -> list[FieldError]:
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
