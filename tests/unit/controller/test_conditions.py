"""metav1.Condition bookkeeping: transition times, ordering, no stale conditions."""

from __future__ import annotations

from fusioninfer.controller.conditions import Cond, merge
from fusioninfer.kube.conditions import find_condition

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def test_new_condition_gets_now_and_generation() -> None:
    out = merge(None, [Cond("Ready", "False", "NotYet", "m")], generation=3, now=T0)
    assert out == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "NotYet",
            "message": "m",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_transition_time_even_if_reason_changes() -> None:
    before = merge(None, [Cond("Ready", "False", "A", "a")], 1, now=T0)
    after = merge(before, [Cond("Ready", "False", "B", "b")], 2, now=T1)
    assert after[0]["lastTransitionTime"] == T0
    assert after[0]["reason"] == "B"
    assert after[0]["observedGeneration"] == 2


def test_flip_moves_transition_time() -> None:
    before = merge(None, [Cond("Ready", "False", "A")], 1, now=T0)
    after = merge(before, [Cond("Ready", "True", "B")], 1, now=T1)
    assert after[0]["lastTransitionTime"] == T1


def test_conditions_not_computed_again_disappear() -> None:
    before = merge(None, [Cond("Ready", "True", "A"), Cond("RouteReady", "False", "B")], 1, now=T0)
    after = merge(before, [Cond("Ready", "True", "A")], 1, now=T1)
    assert find_condition(after, "RouteReady") is None
    assert [c["type"] for c in after] == ["Ready"]


def test_known_types_come_in_a_fixed_order() -> None:
    out = merge(None, [Cond("Zeta", "True", "z"), Cond("Ready", "True", "r"), Cond("Valid", "True", "v")], 1, now=T0)
    assert [c["type"] for c in out] == ["Valid", "Ready", "Zeta"]
