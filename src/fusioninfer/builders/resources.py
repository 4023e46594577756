"""Exact Kubernetes resource-quantity arithmetic, for the PodGroup's `minResources`.

Volcano admits a PodGroup only when its queue can hold `minResources`, so the sum must be
exact: the Go original used `Quantity.Value()`, which rounds 500m CPU up to a whole core and
made a 3-pod group ask for 3 cores instead of 1.5. Here a quantity is an integer number of
nano-units (the finest precision Kubernetes keeps), so sums and products never round, and the
result is written in the canonical form the apiserver itself would print ("1500m", "3Gi", "64").

No small, maintained PyPI package does Kubernetes quantities, and `kubernetes.utils` (which
only parses, and does not print the canonical form) is too large a dependency for that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from math import ceil
from typing import Any

NANO = 10**9

# The grammar of k8s.io/apimachinery/pkg/api/resource: a signed decimal number and a suffix
# that is binary SI (Ki..Ei), decimal SI (n, u, m, "", k, M, G, T, P, E) or an exponent (e3).
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_OUT = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_OUT = {exp: suffix for suffix, exp in _DECIMAL.items()}


class QuantityFormat(StrEnum):
    """How a quantity is written; sums keep binary only when every term is binary."""

    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"


class InvalidQuantity(ValueError):
    """A string that is not a Kubernetes quantity."""


@dataclass(frozen=True)
class Quantity:
    """An exact quantity: `nanos` nano-units (integer), plus the notation to print it in."""

    nanos: int
    format: QuantityFormat = QuantityFormat.DECIMAL_SI

    @classmethod
    def parse(cls, raw: str | int | float) -> Quantity:
        """Parse as the apiserver does; values finer than 1n are rounded up to 1n, like Kubernetes."""
        if isinstance(raw, bool):
            raise InvalidQuantity(f"not a quantity: {raw!r}")
        text = repr(raw) if isinstance(raw, float) else str(raw)
        match = _QUANTITY.match(text.strip())
        if match is None:
            raise InvalidQuantity(f"not a quantity: {raw!r}")
        number = Fraction(match.group("number"))  # exact: "1.5" is 3/2, never a float
        if match.group("sign") == "-":
            number = -number
        suffix = match.group("suffix") or ""
        fmt = QuantityFormat.DECIMAL_SI
        if suffix in _BINARY:
            value = number * 1024 ** _BINARY[suffix]
            fmt = QuantityFormat.BINARY_SI
        elif suffix in _DECIMAL:
            value = number * Fraction(10) ** _DECIMAL[suffix]
        else:
            value = number * Fraction(10) ** int(suffix[1:])
        return cls(ceil(value * NANO), fmt)

    @classmethod
    def zero(cls) -> Quantity:
        return cls(0)

    @property
    def value(self) -> Decimal:
        """The exact value (Decimal from a string, so no context rounding)."""
        return Decimal(f"{self.nanos}E-9").normalize() if self.nanos else Decimal(0)

    def __add__(self, other: Quantity) -> Quantity:
        binary = self.format is QuantityFormat.BINARY_SI and other.format is QuantityFormat.BINARY_SI
        return Quantity(self.nanos + other.nanos, QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI)

    def __mul__(self, times: int) -> Quantity:
        if isinstance(times, bool) or not isinstance(times, int):
            return NotImplemented
        return Quantity(self.nanos * times, self.format)

    __rmul__ = __mul__

    def __str__(self) -> str:
        """The canonical form Kubernetes prints (see `Quantity.CanonicalizeBytes`)."""
        nanos = self.nanos
        if nanos == 0:
            return "0"
        if self.format is QuantityFormat.BINARY_SI and nanos % NANO == 0 and abs(nanos) >= 1024 * NANO:
            whole, power = nanos // NANO, 0
            while power < len(_BINARY_OUT) - 1 and whole % 1024 == 0:
                whole //= 1024
                power += 1
            return f"{whole}{_BINARY_OUT[power]}"
        # Decimal SI: the largest suffix that leaves an integer mantissa ("2k", "1500m", "5n").
        for exponent in range(18, -12, -3):
            scale = 10 ** (exponent + 9)
            if nanos % scale == 0:
                return f"{nanos // scale}{_DECIMAL_OUT[exponent]}"
        raise AssertionError("unreachable: every nano count is a multiple of 1n")  # pragma: no cover


Resources = dict[str, Quantity]


def parse_quantity(raw: str | int | float) -> Quantity:
    return Quantity.parse(raw)


def add(*lists: Mapping[str, Quantity]) -> Resources:
    """The per-resource sum of several resource lists."""
    total: Resources = {}
    for resources in lists:
        for name, quantity in resources.items():
            total[name] = total[name] + quantity if name in total else quantity
    return total


def scale(resources: Mapping[str, Quantity], times: int) -> Resources:
    return {name: quantity * times for name, quantity in resources.items()}


def maximum(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> Resources:
    """The per-resource maximum (a resource missing on one side counts as zero)."""
    out: Resources = dict(a)
    for name, quantity in b.items():
        if name not in out or quantity.nanos > out[name].nanos:
            out[name] = quantity
    return out


def to_manifest(resources: Mapping[str, Quantity]) -> dict[str, str]:
    """A ResourceList as written into a manifest: canonical strings, keys sorted (stable apply)."""
    return {name: str(resources[name]) for name in sorted(resources)}


def _parse_list(raw: Any) -> Resources:
    """A ResourceList from a user's template; values that are not quantities are skipped.

    Skipping (not raising) keeps the builders total: the apiserver rejects the same template,
    with a precise message, when the workload that carries it is applied.
    """
    out: Resources = {}
    if not isinstance(raw, Mapping):
        return out
    for name, value in raw.items():
        if not isinstance(value, str | int | float):
            continue
        try:
            out[str(name)] = Quantity.parse(value)
        except InvalidQuantity:
            continue
    return out


def container_requests(container: Mapping[str, Any]) -> Resources:
    """What the scheduler reserves for a container: requests, and limits where requests are absent.

    This is the apiserver's defaulting (a limit without a request becomes the request), done per
    resource, so a template that only sets `limits: {nvidia.com/gpu: 8}` still counts its GPUs.
    """
    resources = container.get("resources")
    if not isinstance(resources, Mapping):
        return {}
    return {**_parse_list(resources.get("limits")), **_parse_list(resources.get("requests"))}


def pod_requests(pod_spec: Mapping[str, Any]) -> Resources:
    """The effective requests of one pod, computed as the Kubernetes scheduler does.

    Regular containers and sidecars (init containers with `restartPolicy: Always`) run together
    and add up; a plain init container runs alone, beside the sidecars started before it, so only
    the largest such moment counts. Pod-level `resources` (cpu/memory) replace the container sum,
    and `overhead` comes on top.
    """
    total = add(*(container_requests(c) for c in _containers(pod_spec, "containers")))
    sidecars: Resources = {}
    init_peak: Resources = {}
    for init in _containers(pod_spec, "initContainers"):
        requests = container_requests(init)
        if init.get("restartPolicy") == "Always":
            sidecars = add(sidecars, requests)
            total = add(total, requests)
            init_peak = maximum(init_peak, sidecars)
        else:
            init_peak = maximum(init_peak, add(requests, sidecars))
    total = maximum(total, init_peak)
    # Pod-level resources have the same shape as a container's, and the same defaulting.
    for name, quantity in container_requests(pod_spec).items():
        if name in ("cpu", "memory"):
            total[name] = quantity
    return add(total, _parse_list(pod_spec.get("overhead")))


def _containers(pod_spec: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    value = pod_spec.get(key)
    if not isinstance(value, list):
        return []
    return [c for c in value if isinstance(c, Mapping)]
