"""The shared Kubernetes helpers: conditions, owner references, multi-document YAML, back-off."""

from __future__ import annotations

import io
import random

import pytest
import yaml

from fusioninfer.kube.conditions import find_condition, keep_transition_times, now_rfc3339, status_condition
from fusioninfer.kube.owners import (
    api_group,
    controller_owner,
    is_controlled_by,
    lists_owner,
    owner_reference,
    owner_uids,
)
from fusioninfer.kube.retry import exponential_delay, jittered
from fusioninfer.kube.yaml import FAST_SAFE_LOADER, load_all


# --- conditions --------------------------------------------------------------------------------
def test_find_condition_by_type() -> None:
    conds = [{"type": "Ready", "status": "True"}, {"type": "Progressing", "status": "False"}]
    assert find_condition(conds, "Progressing") == {"type": "Progressing", "status": "False"}
    assert find_condition(conds, "Degraded") is None
    assert find_condition(None, "Ready") is None


def test_status_condition_reads_status_conditions() -> None:
    obj = {"status": {"conditions": [{"type": "Accepted", "status": "True"}]}}
    assert status_condition(obj, "Accepted") == {"type": "Accepted", "status": "True"}
    assert status_condition({"status": None}, "Accepted") is None
    assert status_condition(None, "Accepted") is None


def test_transition_time_is_kept_while_the_status_holds() -> None:
    before = [{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}]
    same = keep_transition_times(before, [{"type": "Ready", "status": "True", "reason": "R"}], "t1")
    flipped = keep_transition_times(before, [{"type": "Ready", "status": "False", "reason": "R"}], "t1")
    new = keep_transition_times(None, [{"type": "Ready", "status": "True"}], "t1")
    assert same == [{"type": "Ready", "status": "True", "reason": "R", "lastTransitionTime": "t0"}]
    assert flipped[0]["lastTransitionTime"] == "t1"
    assert new[0]["lastTransitionTime"] == "t1"


def test_a_previous_condition_without_a_time_gets_the_stamp() -> None:
    out = keep_transition_times([{"type": "Ready", "status": "True"}], [{"type": "Ready", "status": "True"}], "t1")
    assert out[0]["lastTransitionTime"] == "t1"


def test_now_is_kubernetes_time() -> None:
    assert len(now_rfc3339()) == len("2024-01-02T03:04:05Z")
    assert now_rfc3339().endswith("Z")


# --- owner references --------------------------------------------------------------------------
def _obj(*refs: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"ownerReferences": list(refs)}}


def test_owner_reference_is_a_blocking_controller_reference() -> None:
    assert owner_reference("fusioninfer.io/v1alpha1", "InferenceService", "svc", "u1") == {
        "apiVersion": "fusioninfer.io/v1alpha1",
        "kind": "InferenceService",
        "name": "svc",
        "uid": "u1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_controlled_by_needs_the_controller_reference_listing_is_any() -> None:
    plain = _obj({"uid": "u1"})
    controlling = _obj({"uid": "u2"}, {"uid": "u1", "controller": True})
    assert lists_owner(plain, "u1")
    assert not is_controlled_by(plain, "u1")
    assert lists_owner(controlling, "u1")
    assert is_controlled_by(controlling, "u1")
    assert lists_owner(controlling, "u2")
    assert not is_controlled_by(controlling, "u2")
    assert not lists_owner({}, "u1")
    assert not is_controlled_by({"metadata": {}}, "u1")


def test_owner_uids_skip_malformed_references() -> None:
    assert owner_uids(_obj({"uid": "a"}, {"name": "no-uid"}, "junk", {"uid": "b"})) == ["a", "b"]  # type: ignore[arg-type]
    assert owner_uids({"metadata": None}) == []


def test_api_group() -> None:
    assert api_group("apps/v1") == "apps"
    assert api_group("v1") == ""
    assert api_group("fusioninfer.io/v1alpha1") == "fusioninfer.io"


def test_controller_owner_skips_malformed_references() -> None:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True}
    assert controller_owner(_obj("junk", ref), "apps/v2", "ReplicaSet") == "rs"  # type: ignore[arg-type]
    assert controller_owner(_obj({**ref, "name": ""}), "apps/v1", "ReplicaSet") is None


# --- multi-document YAML -----------------------------------------------------------------------
def test_load_all_keeps_order_and_drops_empty_documents() -> None:
    text = "---\na: 1\n---\n# only a comment\n---\n- b\n---\n"
    assert load_all(text) == [{"a": 1}, ["b"]]
    assert load_all(io.StringIO(text)) == [{"a": 1}, ["b"]]
    assert load_all(text, loader=FAST_SAFE_LOADER) == [{"a": 1}, ["b"]]
    assert load_all("") == []


def test_load_all_is_safe() -> None:
    with pytest.raises(yaml.YAMLError):
        load_all("!!python/object/apply:os.system ['true']\n")


# --- back-off ----------------------------------------------------------------------------------
def test_exponential_delay_doubles_up_to_the_cap() -> None:
    assert [exponential_delay(a, base=0.5, cap=3.0) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert exponential_delay(10_000, base=1.0, cap=7.0) == 7.0


def test_jitter_stays_in_its_range() -> None:
    random.seed(3)
    values = [jittered(2.0, 0.5, 1.0) for _ in range(200)]
    assert all(1.0 <= v <= 2.0 for v in values)
    assert len(set(values)) > 100
