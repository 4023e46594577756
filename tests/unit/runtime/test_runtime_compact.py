"""Compacted cache objects are equal to what was decoded, and share what can be shared."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fusioninfer.runtime.compact import INTERNED_LENGTH, compact
from fusioninfer.runtime.store import IndexedStore

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


@given(
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    st.none() | st.dictionaries(st.text(max_size=12), json_values, max_size=5),
)
def test_compact_changes_nothing_but_identity(obj: dict[str, Any], previous: dict[str, Any] | None) -> None:
    assert compact(obj, previous) == obj


def decoded(text: str) -> Any:
    return json.loads(text)  # a fresh copy of every string, as from the watch


def test_two_decoded_objects_share_keys_and_short_values() -> None:
    text = json.dumps({"spec": {"imagePullPolicy": "IfNotPresent", "config": "x" * (INTERNED_LENGTH + 1)}})
    a, b = compact(decoded(text)), compact(decoded(text))
    key_a = next(k for k in a["spec"] if k == "imagePullPolicy")
    key_b = next(k for k in b["spec"] if k == "imagePullPolicy")
    assert key_a is key_b
    assert a["spec"]["imagePullPolicy"] is b["spec"]["imagePullPolicy"]
    assert a["spec"]["config"] is not b["spec"]["config"], "a long string is left alone"


def test_an_update_reuses_the_parts_it_did_not_change() -> None:
    before = compact(decoded('{"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}, "status": {"ready": 0}}'))
    after = compact(
        decoded('{"metadata": {"resourceVersion": "2"}, "spec": {"replicas": 1}, "status": {"ready": 1}}'), before
    )
    assert after["spec"] is before["spec"]
    assert after["status"] == {"ready": 1}
    assert after["metadata"]["resourceVersion"] == "2"


def test_the_store_holds_compacted_objects() -> None:
    store = IndexedStore()
    text = '{"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "1"}, "spec": {"k": "v"}}'
    store.put(decoded(text))
    first = store.get(("ns", "a"))
    assert first == decoded(text)
    store.put(decoded(text.replace('"1"', '"2"')))
    second = store.get(("ns", "a"))
    assert second is not None
    assert first is not None
    assert second["spec"] is first["spec"]
    assert second["metadata"]["resourceVersion"] == "2"
