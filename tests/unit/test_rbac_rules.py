"""The operator's ClusterRole: generated from the code, checked in unchanged, covering what the
code touches and everything the endpoint picker's Role grants (RBAC's escalation check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fusioninfer.api.v1alpha1 import GROUP, PLURAL, Role
from fusioninfer.builders import epp
from fusioninfer.builders.kinds import CHILD_KINDS
from fusioninfer.cli import app
from fusioninfer.install import rbac
from fusioninfer.install.generate import CHART_RULES_FILE, ROLE_FILE

ROOT = Path(__file__).resolve().parents[2]


def router(replicas: int) -> Role:
    return Role.model_validate({"name": "router", "componentType": "router", "endpointPicker": {"replicas": replicas}})


def test_checked_in_role_is_the_generated_one() -> None:
    assert (ROOT / ROLE_FILE).read_text() == rbac.cluster_role_yaml(), "config/rbac/role.yaml is stale: make manifests"


def test_chart_rules_are_the_generated_ones() -> None:
    """The chart's copy; that `helm template` puts exactly these rules in the chart's ClusterRole is
    tests/unit/test_packaging.py's `test_chart_cluster_role_is_the_generated_one`."""
    assert (ROOT / CHART_RULES_FILE).read_text() == rbac.rules_yaml(), "chart rules are stale: make manifests"
    assert yaml.safe_load((ROOT / CHART_RULES_FILE).read_text()) == rbac.operator_rules()


def test_cli_prints_the_role_and_the_rules() -> None:
    result = CliRunner().invoke(app, ["rbac"])
    assert result.exit_code == 0, result.output
    assert result.stdout == rbac.cluster_role_yaml()
    rules = CliRunner().invoke(app, ["rbac", "--rules-only"])
    assert yaml.safe_load(rules.stdout) == rbac.operator_rules()
    explained = CliRunner().invoke(app, ["rbac", "--explain"])
    assert "leader election" in explained.stdout
    assert "granted to the endpoint picker" in explained.stdout


def held() -> set[tuple[str, str, str]]:
    return rbac.permissions(rbac.operator_rules())


@pytest.mark.parametrize("kind", CHILD_KINDS, ids=lambda k: k.kind)
def test_every_child_kind_can_be_watched_applied_and_pruned(kind: Any) -> None:
    for verb in ("list", "watch", "create", "patch", "delete"):
        assert (kind.group, kind.plural, verb) in held()


def test_informers_status_events_and_leader_election() -> None:
    have = held()
    for triple in [
        (GROUP, PLURAL, "list"),
        (GROUP, PLURAL, "watch"),
        (GROUP, f"{PLURAL}/status", "patch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "events", "create"),
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ]:
        assert triple in have, triple


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_operator_holds_everything_it_grants_the_picker(replicas: int) -> None:
    assert rbac.missing(rbac.operator_rules(), epp.rbac_rules(router(replicas))) == set()


def test_missing_finds_a_removed_permission() -> None:
    """The check above can fail: drop the InferenceObjective read and the HA picker's Role is refused."""
    rules = [
        {**r, "resources": [x for x in r["resources"] if x != "inferenceobjectives"]} for r in rbac.operator_rules()
    ]
    assert rbac.missing(rules, epp.rbac_rules(router(1))) == {
        ("inference.networking.x-k8s.io", "inferenceobjectives", verb) for verb in ("get", "list", "watch")
    }
    assert rbac.missing([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], epp.rbac_rules(router(2))) == set()


def test_least_privilege() -> None:
    """No wildcards, no Secrets, no cluster-scoped writes, nothing the code does not use."""
    rules = rbac.operator_rules()
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field]
    have = held()
    assert not any(resource in ("secrets", "nodes", "namespaces") for _, resource, _ in have)
    assert not any(verb in ("escalate", "bind", "impersonate", "deletecollection") for _, _, verb in have)
    assert ("apiextensions.k8s.io", "customresourcedefinitions", "patch") not in have
    # Children are written by server-side apply (never update) and read from caches (never get).
    for kind in CHILD_KINDS:
        assert (kind.group, kind.plural, "update") not in have
        if kind.plural != "inferencepools":  # the picker reads its pool
            assert (kind.group, kind.plural, "get") not in have


def test_merge_is_minimal_and_stable() -> None:
    rules = rbac.operator_rules()
    assert rules == rbac.merge(rbac.all_needs()[::-1])  # order of the sources does not matter
    keys = [(r["apiGroups"][0], tuple(r["verbs"])) for r in rules]
    assert len(keys) == len(set(keys)), "one rule per (group, verbs)"
    for r in rules:
        assert r["resources"] == sorted(r["resources"])
        assert r["verbs"] == sorted(r["verbs"], key=rbac.VERB_ORDER.index)


def test_a_new_child_kind_changes_the_role(monkeypatch: pytest.MonkeyPatch) -> None:
    from fusioninfer.builders.kinds import ChildKind

    extra = ChildKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
    monkeypatch.setattr(rbac, "CHILD_KINDS", (*CHILD_KINDS, extra))
    assert ("policy", "poddisruptionbudgets", "patch") in rbac.permissions(rbac.operator_rules())
    assert rbac.cluster_role_yaml() != (ROOT / ROLE_FILE).read_text()
