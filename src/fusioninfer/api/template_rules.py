"""Rules of a serving role's pod template: the parts the builders read (containers, their names,
images, command lines and ports) and the labels the operator reserves.

The rest of the PodSpec is the apiserver's to validate when the workload is applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fusioninfer.api.errors import FieldError, quote
from fusioninfer.api.labels import is_reserved
from fusioninfer.api.v1alpha1 import Role


def check_serving_template(prefix: str, role: Role) -> list[FieldError]:
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
    for path, container in _objects(f"{prefix}.template.spec.containers", containers, errors):
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
    for port_path, port in _objects(f"{path}.ports", ports, errors):
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


def _objects(path: str, items: list[Any], errors: list[FieldError]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each element of `items` that is an object, with its path; the others are reported in `errors`."""
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if isinstance(item, dict):
            yield item_path, item
        else:
            errors.append(FieldError(item_path, "Invalid value: must be an object"))


def check_template_labels(prefix: str, role: Role) -> list[FieldError]:
    if role.template is None or role.template.metadata is None or not role.template.metadata.labels:
        return []
    return [
        FieldError(f"{prefix}.template.metadata.labels[{key}]", "Forbidden: reserved for the operator")
        for key in sorted(role.template.metadata.labels)
        if is_reserved(key)
    ]
