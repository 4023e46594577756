"""Child names and their length budgets: the contract between validation and the builders."""

from __future__ import annotations

import pytest

from fusioninfer.api import naming


def test_child_names() -> None:
    assert naming.workload_name("svc", "decode") == "svc-decode"
    assert naming.epp_name("svc") == "svc-epp"
    assert naming.epp_config_name("svc") == "svc-epp-config"
    assert naming.pool_name("svc") == "svc-pool"
    assert naming.route_name("svc") == "svc-route"
    assert naming.gateway_name("svc") == "svc-gateway"
    assert naming.podgroup_name("svc") == "svc"


@pytest.mark.parametrize("name", ["a", "a1", "a-b", "abc-123-x", "a" * 63])
def test_dns1035_accepts(name: str) -> None:
    assert naming.DNS1035_LABEL.match(name)


@pytest.mark.parametrize("name", ["", "A", "1a", "-a", "a-", "a_b", "a.b", "a b", "é"])
def test_dns1035_rejects(name: str) -> None:
    assert not naming.DNS1035_LABEL.match(name)


def test_multinode_budget_leaves_room_for_statefulset_revision_label() -> None:
    # {lws}-{5-digit group index}-{10-char revision hash} must fit a 63-character label value.
    assert naming.MULTINODE_NAME_MAX + len("-12345") + len("-") + 10 == naming.DNS1035_MAX


@pytest.mark.parametrize(
    ("role", "multinode", "what", "limit", "fits"),
    [
        ("r" * 59, False, "Deployment", 63, True),
        ("r" * 60, False, "Deployment", 63, False),
        ("r" * 42, True, "LeaderWorkerSet", 46, True),
        ("r" * 43, True, "LeaderWorkerSet", 46, False),
    ],
)
def test_role_name_budget(role: str, multinode: bool, what: str, limit: int, fits: bool) -> None:
    budget = naming.role_name_budget("svc", role, multinode)
    assert budget.name == f"svc-{role}"
    assert (budget.what, budget.limit, budget.fits) == (what, limit, fits)


def test_service_level_names() -> None:
    budgets = naming.service_level_names("svc")
    assert [(b.what, b.name, b.limit) for b in budgets] == [
        ("endpoint picker Service", "svc-epp", 63),
        ("InferencePool", "svc-pool", 63),
        ("Gateway", "svc-gateway", 63),
        ("endpoint picker ConfigMap", "svc-epp-config", 63),
        ("label value fusioninfer.io/service", "svc", 63),
    ]
    assert all(b.fits for b in budgets)
    assert [b.what for b in naming.service_level_names("svc", router=False)] == ["label value fusioninfer.io/service"]
    assert "Gateway" not in [b.what for b in naming.service_level_names("svc", gateway=False)]


@pytest.mark.parametrize(("length", "fits"), [(52, True), (53, False)])
def test_longest_service_name(length: int, fits: bool) -> None:
    assert all(b.fits for b in naming.service_level_names("s" * length)) is fits


def test_every_service_level_child_name_fits_when_the_budgets_do() -> None:
    for length in range(1, 64):
        service = "s" * length
        if not all(b.fits for b in naming.service_level_names(service)):
            continue
        for name in (
            naming.epp_name(service),
            naming.epp_config_name(service),
            naming.pool_name(service),
            naming.route_name(service),
            naming.gateway_name(service),
            naming.podgroup_name(service),
        ):
            assert len(name) <= naming.DNS1035_MAX, name
