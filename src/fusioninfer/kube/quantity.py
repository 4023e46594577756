"""Kubernetes resource quantities ("500m", "3Gi", "1e3"): one grammar, exact arithmetic.

Two users, one parser:
* the builders sum requests into a PodGroup's `minResources` (`Quantity`): Volcano admits a
  PodGroup only when its queue can hold `minResources`, so the sum must be exact. The Go
  original used `Quantity.Value()`, which rounds 500m CPU up to a whole core and made a 3-pod
  group ask for 3 cores instead of 1.5. Here a quantity is an integer number of nano-units (the
  finest precision Kubernetes keeps), so sums and products never round, and the result is
  written in the canonical form the apiserver itself would print ("1500m", "3Gi", "64");
* server-side apply compares what we want with what the apiserver stored (`exact_value`): the
  apiserver rewrites `0.5` as `500m`, and the two must compare equal, or every reconcile
  would write again; and it must send numbers in quantity positions (`QUANTITY_MAPS`,
  `QUANTITY_KEYS`) as strings (`stringify_quantities`).

No small, maintained PyPI package does Kubernetes quantities, and `kubernetes.utils` (which
only parses, and does not print the canonical form) is too large a dependency for that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from math import ceil
from typing import Any

NANO = 10**9

# Map keys whose values are maps of quantities (ResourceList and friends) ...
QUANTITY_MAPS = frozenset({"limits", "requests", "capacity", "allocatable", "hard", "used", "overhead"})
# ... and keys whose value is a single quantity.
QUANTITY_KEYS = frozenset({"sizeLimit"})

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


def parse_exact(raw: str | int | float) -> tuple[Fraction, QuantityFormat]:
    """The exact value of a quantity (a Fraction: "1.5" is 3/2, never a float) and its notation."""
    if isinstance(raw, bool):
        raise InvalidQuantity(f"not a quantity: {raw!r}")
    text = repr(raw) if isinstance(raw, float) else str(raw)
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise InvalidQuantity(f"not a quantity: {raw!r}")
    number = Fraction(match.group("number"))
    if match.group("sign") == "-":
        number = -number
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * 1024 ** _BINARY[suffix], QuantityFormat.BINARY_SI
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix], QuantityFormat.DECIMAL_SI
    return number * Fraction(10) ** int(suffix[1:]), QuantityFormat.DECIMAL_SI


def _as_decimal(value: Fraction) -> Decimal:
    """A Fraction whose denominator has no prime factor but 2 and 5 (every parsed quantity's) as
    an exact Decimal, built from a string so no context precision rounds it."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:  # pragma: no cover - the grammar cannot produce one
        raise ValueError(f"not a finite decimal: {value}")
    digits = max(twos, fives)
    return Decimal(f"{value.numerator * 10**digits // value.denominator}E-{digits}")


def exact_value(value: object) -> Decimal | None:
    """The exact value of a quantity (string or number) as a Decimal, or None if it is not one.

    For comparing quantities written differently ("0.5" and "500m"); no rounding to 1n.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        exact, _ = parse_exact(value)
    except InvalidQuantity:
        return None
    return _as_decimal(exact)


@dataclass(frozen=True)
class Quantity:
    """An exact quantity: `nanos` nano-units (integer), plus the notation to print it in."""

    nanos: int
    format: QuantityFormat = QuantityFormat.DECIMAL_SI

    @classmethod
    def parse(cls, raw: str | int | float) -> Quantity:
        """Parse as the apiserver does; values finer than 1n are rounded up to 1n, like Kubernetes."""
        value, fmt = parse_exact(raw)
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


def quantity_string(value: Any) -> Any:
    """A number written as the quantity string the apiserver reads (``0.5`` -> ``"0.5"``, ``2`` ->
    ``"2"``); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return str(value) if isinstance(value, int) else format(Decimal(str(value)).normalize(), "f")


def stringify_quantities(obj: Any) -> Any:
    """A copy of `obj` with numbers in quantity positions (``limits``/``requests``/...,
    ``sizeLimit``) turned into strings.

    Why: the apiserver accepts ``cpu: 0.5`` in a create or update, but server-side apply builds a
    typed object first and rejects it ("expected string, got 0.5"). `runtime.diff` already treats
    both forms as equal (`exact_value`).
    """
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if key in QUANTITY_MAPS and isinstance(value, Mapping):
                out[key] = {k: quantity_string(v) for k, v in value.items()}
            elif key in QUANTITY_KEYS:
                out[key] = quantity_string(value)
            else:
                out[key] = stringify_quantities(value)
        return out
    if isinstance(obj, list):
        return [stringify_quantities(v) for v in obj]
    return obj
