"""One quantity grammar for the builders' sums and server-side apply's comparisons."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusioninfer.kube.quantity import Quantity, exact_value, stringify_quantities
from fusioninfer.runtime.diff import needs_apply

# The Decimal parser runtime/apply.py had before it used kube.quantity, kept as an oracle: the
# shared parser must give the same value for every quantity. (The old one multiplied at the
# default Decimal precision, 28 digits, so "867362.0001Ei" came out rounded; the oracle runs at
# a precision where it is exact, and the shared parser is exact everywhere.)
_OLD_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_OLD_DEC = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12"}
_OLD_DEC |= {"P": "1e15", "E": "1e18"}
_OLD_BIN = {s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))}


def _old_parse(value: str) -> Decimal | None:
    m = _OLD_RE.match(value.strip())
    if m is None:
        return None
    number, suffix = Decimal(m.group(1)), m.group(2) or ""
    if suffix in _OLD_BIN:
        return number * _OLD_BIN[suffix]
    if suffix in _OLD_DEC:
        return number * Decimal(_OLD_DEC[suffix])
    return number.scaleb(int(suffix[1:]))


_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e3", "E-2", "e+1"]


@given(
    sign=st.sampled_from(["", "+", "-"]),
    whole=st.integers(min_value=0, max_value=10**9),
    fraction=st.one_of(st.none(), st.text("0123456789", max_size=6)),
    suffix=st.sampled_from(_SUFFIXES),
)
@settings(max_examples=300, deadline=None)
def test_the_shared_parser_agrees_with_the_old_decimal_one(
    sign: str, whole: int, fraction: str | None, suffix: str
) -> None:
    text = f"{sign}{whole}{'' if fraction is None else '.' + fraction}{suffix}"
    with localcontext(prec=100):
        expected = _old_parse(text)
    assert exact_value(text) == expected


@pytest.mark.parametrize("value", ["", "abc", "1X", "Gi", "1.2.3", "1 Gi", True, None, [1], {"a": 1}])
def test_not_quantities(value: object) -> None:
    assert exact_value(value) is None


def test_numbers_are_quantities_too() -> None:
    assert exact_value(2) == Decimal(2)
    assert exact_value(0.5) == Decimal("0.5")
    assert exact_value(1e-7) == Decimal("1e-7")


def test_exact_beyond_decimal_precision() -> None:
    # 31 significant digits: Decimal arithmetic at the default precision (28) would round.
    assert exact_value("1234567890123456789012345678901m") == Decimal("1234567890123456789012345678.901")


@pytest.mark.parametrize("text", ["500m", "1.5", "3Gi", "2k", "100n", "1e3", "-1"])
def test_the_builders_quantity_has_the_same_value(text: str) -> None:
    assert Quantity.parse(text).value == exact_value(text)


# -- exact values (what server-side apply compares) and the apply body ------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("1000m", Decimal(1)),
        ("1.5", Decimal("1.5")),
        ("100n", Decimal("1e-7")),
        ("5u", Decimal("5e-6")),
        ("2k", Decimal(2000)),
        ("1Ki", Decimal(1024)),
        ("3Mi", Decimal(3 * 1024**2)),
        ("1Ei", Decimal(1024**6)),
        ("1e3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        (".5", Decimal("0.5")),
        ("-1", Decimal(-1)),
        (2, Decimal(2)),
    ],
)
def test_exact_value_of_every_form(text: object, value: Decimal) -> None:
    assert exact_value(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1X", "Gi", "1.2.3", True, None, [1]])
def test_exact_value_rejects_what_is_not_a_quantity(text: object) -> None:
    assert exact_value(text) is None


def test_stringify_quantities_for_ssa() -> None:
    manifest = {
        "spec": {
            "replicas": 2,
            "containers": [
                {"resources": {"limits": {"cpu": 0.5, "nvidia.com/gpu": 1, "memory": "1Gi"}, "requests": {"cpu": 2}}}
            ],
            "volumes": [{"emptyDir": {"sizeLimit": 1024}}],
            "flag": True,
        }
    }
    out = stringify_quantities(manifest)
    c = out["spec"]["containers"][0]["resources"]
    assert c == {"limits": {"cpu": "0.5", "nvidia.com/gpu": "1", "memory": "1Gi"}, "requests": {"cpu": "2"}}
    assert out["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "1024"
    assert out["spec"]["replicas"] == 2, "numbers elsewhere stay numbers"
    assert out["spec"]["flag"] is True
    assert manifest["spec"]["containers"][0]["resources"]["limits"]["cpu"] == 0.5, "input untouched"
    assert not needs_apply(manifest, out)
    assert exact_value(stringify_quantities({"limits": {"x": 1e-7}})["limits"]["x"]) == Decimal("1e-7")
