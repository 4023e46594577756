"""Kubernetes quantity arithmetic: exact sums and the canonical form the apiserver prints."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusioninfer.builders.resources import (
    add,
    container_requests,
    maximum,
    pod_requests,
    scale,
    to_manifest,
)
from fusioninfer.kube.quantity import InvalidQuantity, Quantity


@pytest.mark.parametrize(
    ("raw", "value", "canonical"),
    [
        ("500m", Decimal("0.5"), "500m"),
        ("1", Decimal(1), "1"),
        ("0.5", Decimal("0.5"), "500m"),
        (".5", Decimal("0.5"), "500m"),
        ("5.", Decimal(5), "5"),
        ("2000m", Decimal(2), "2"),
        ("1500", Decimal(1500), "1500"),
        ("1000", Decimal(1000), "1k"),
        ("1e3", Decimal(1000), "1k"),
        ("1E", Decimal(10) ** 18, "1E"),
        ("1Gi", Decimal(2**30), "1Gi"),
        ("0.5Gi", Decimal(2**29), "512Mi"),
        ("1.5Gi", Decimal(3 * 2**29), "1536Mi"),
        ("1536Ki", Decimal(1536 * 1024), "1536Ki"),
        ("512Ki", Decimal(512 * 1024), "512Ki"),
        ("512", Decimal(512), "512"),
        ("100u", Decimal("0.0001"), "100u"),
        ("0.1n", Decimal("1E-9"), "1n"),  # Kubernetes rounds up to its nano precision
        ("0", Decimal(0), "0"),
        (8, Decimal(8), "8"),
        (0.25, Decimal("0.25"), "250m"),
    ],
)
def test_parse_and_canonical_form(raw: str | int | float, value: Decimal, canonical: str) -> None:
    quantity = Quantity.parse(raw)
    assert quantity.value == value
    assert str(quantity) == canonical


@pytest.mark.parametrize("raw", ["", "abc", "1.2.3", "1Ki2", "1 Gi", "1gi", "Gi", "1e", "1e1.5", True, "--1"])
def test_rejects_what_is_not_a_quantity(raw: object) -> None:
    with pytest.raises(InvalidQuantity):
        Quantity.parse(raw)  # type: ignore[arg-type]


def test_milli_cpu_is_never_rounded_to_whole_cores() -> None:
    # The Go original used Quantity.Value(): 3 x 500m became 3 cores.
    assert str(Quantity.parse("500m") * 3) == "1500m"
    assert str(Quantity.parse("250m") * 4) == "1"


def test_memory_keeps_binary_suffixes_and_gpus_stay_integers() -> None:
    assert str(Quantity.parse("1Gi") * 3) == "3Gi"
    assert str(Quantity.parse("8") * 8) == "64"


def test_mixed_notations_sum_in_decimal() -> None:
    total = Quantity.parse("1Gi") + Quantity.parse("1G")
    assert total.value == 2**30 + 10**9
    assert str(total) == str(2**30 + 10**9)
    assert str(Quantity.parse("1Gi") + Quantity.parse("1Gi")) == "2Gi"


def test_resource_list_helpers() -> None:
    a = {"cpu": Quantity.parse("500m"), "memory": Quantity.parse("1Gi")}
    b = {"cpu": Quantity.parse("2"), "nvidia.com/gpu": Quantity.parse("1")}
    assert to_manifest(add(a, b)) == {"cpu": "2500m", "memory": "1Gi", "nvidia.com/gpu": "1"}
    assert to_manifest(scale(a, 4)) == {"cpu": "2", "memory": "4Gi"}
    assert to_manifest(maximum(a, b)) == {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}
    assert list(to_manifest(b)) == ["cpu", "nvidia.com/gpu"]


def test_container_requests_fall_back_to_limits_per_resource() -> None:
    container = {
        "resources": {
            "requests": {"cpu": "1"},
            "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"},
        }
    }
    assert to_manifest(container_requests(container)) == {"cpu": "1", "memory": "8Gi", "nvidia.com/gpu": "2"}
    assert container_requests({}) == {}
    assert container_requests({"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}}}) == {
        "memory": Quantity.parse("1Gi")
    }


def test_pod_requests_follow_the_scheduler_rules() -> None:
    spec = {
        "initContainers": [
            # A plain init container runs alone: only its peak counts.
            {"name": "download", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}},
            # A sidecar runs beside the main containers: it adds up.
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "250m"}}},
        ],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": "1"}}},
        ],
        "overhead": {"cpu": "100m"},
    }
    assert to_manifest(pod_requests(spec)) == {
        "cpu": "4100m",  # max(1 + 0.5 + 0.25, 4) + 0.1 overhead
        "memory": "2Gi",
        "nvidia.com/gpu": "1",
    }


def test_init_container_after_a_sidecar_runs_beside_it() -> None:
    spec = {
        "initContainers": [
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "setup", "resources": {"requests": {"cpu": "3"}}},
        ],
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
    }
    assert str(pod_requests(spec)["cpu"]) == "4"  # setup (3) runs beside the proxy (1)


def test_pod_level_resources_replace_the_container_sum() -> None:
    spec = {
        "resources": {"limits": {"cpu": "8", "memory": "16Gi"}},
        "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}}],
    }
    assert to_manifest(pod_requests(spec)) == {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}


# --- properties -------------------------------------------------------------------------------
_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"]


@st.composite
def quantity_strings(draw: st.DrawFn) -> str:
    whole = draw(st.integers(min_value=0, max_value=10**6))
    fraction = draw(st.one_of(st.just(""), st.integers(min_value=0, max_value=999).map(lambda f: f".{f:03d}")))
    return f"{whole}{fraction}{draw(st.sampled_from(_SUFFIXES))}"


@given(quantity_strings(), st.integers(min_value=0, max_value=10_000))
def test_sum_of_n_copies_is_n_times_the_quantity_exactly(raw: str, n: int) -> None:
    q = Quantity.parse(raw)
    total = Quantity.zero()
    for _ in range(n):
        total = total + q
    product = q * n
    assert total.nanos == product.nanos
    assert product.value == q.value * n
    # The printed form reads back as exactly the same amount.
    assert Quantity.parse(str(product)).value == product.value


@given(quantity_strings())
def test_canonical_form_round_trips(raw: str) -> None:
    q = Quantity.parse(raw)
    again = Quantity.parse(str(q))
    assert again.nanos == q.nanos
    assert str(again) == str(q)


@given(st.lists(quantity_strings(), min_size=1, max_size=20))
def test_addition_is_exact_and_order_free(raws: list[str]) -> None:
    quantities = [Quantity.parse(r) for r in raws]
    forward = Quantity.zero()
    for q in quantities:
        forward = forward + q
    backward = Quantity.zero()
    for q in reversed(quantities):
        backward = backward + q
    assert forward.value == backward.value == sum((q.value for q in quantities), Decimal(0))
