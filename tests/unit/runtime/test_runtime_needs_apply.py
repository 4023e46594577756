"""needs_apply: is the live object (with apiserver defaults) already a superset of the desired one?"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusioninfer.kube.quantity import exact_value
from fusioninfer.runtime.diff import (
    APPLIED_HASH_ANNOTATION,
    first_difference,
    manifest_hash,
    needs_apply,
    with_hash_annotation,
)

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "nginx:1",
                        "args": ["--port", "80"],
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "A", "value": "1"}, {"name": "EMPTY", "value": ""}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
                    }
                ],
                "hostNetwork": False,
            },
        },
    },
}


def live_deployment() -> dict[str, Any]:
    """What the apiserver returns for DEPLOYMENT: defaults, normalised quantities, status, metadata."""
    live = copy.deepcopy(DEPLOYMENT)
    live["metadata"].update(
        {"uid": "u1", "resourceVersion": "42", "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z"}
    )
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "1"}
    spec = live["spec"]
    spec.update({"revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, "strategy": {"type": "RollingUpdate"}})
    pod = spec["template"]["spec"]
    del pod["hostNetwork"]  # omitempty bool
    pod.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"})
    c = pod["containers"][0]
    c["ports"][0]["protocol"] = "TCP"
    c["env"][1] = {"name": "EMPTY"}  # omitempty string
    c["env"].append({"name": "INJECTED", "value": "by-someone-else"})  # another manager's list-map entry
    c["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    c.update({"terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"})
    live["status"] = {"replicas": 2, "readyReplicas": 2}
    del live["apiVersion"]  # LIST items carry no apiVersion/kind
    del live["kind"]
    return live


def test_live_with_defaults_needs_no_apply() -> None:
    assert first_difference(DEPLOYMENT, live_deployment()) is None
    assert not needs_apply(DEPLOYMENT, live_deployment())


def test_missing_live_needs_apply() -> None:
    assert needs_apply(DEPLOYMENT, None)


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    live = live_deployment()
    node: Any = live
    for p in path[:-1]:
        node = node[p]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return live


C0 = ["spec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(
    ("path", "value", "why"),
    [
        (["spec", "replicas"], 3, "scalar changed"),
        (["spec", "replicas"], KeyError, "field removed"),
        (["metadata", "labels", "app"], "other", "label changed"),
        (["metadata", "labels"], {}, "labels dropped"),
        ([*C0, "image"], "nginx:2", "image changed"),
        ([*C0, "args"], ["--port", "81"], "atomic list element changed"),
        ([*C0, "args"], ["--port", "80", "--x"], "atomic list grew"),
        ([*C0, "args"], ["--port"], "atomic list shrank"),
        ([*C0, "env"], [{"name": "EMPTY"}], "list-map entry missing"),
        ([*C0, "env"], [{"name": "A", "value": "2"}, {"name": "EMPTY"}], "list-map value changed"),
        ([*C0, "resources", "limits", "cpu"], "2", "quantity changed"),
        ([*C0, "resources", "limits", "memory"], "1G", "1G is not 1Gi"),
        ([*C0, "resources", "requests"], KeyError, "requests removed"),
        (["spec", "template", "spec", "hostNetwork"], True, "bool flipped"),
        (["spec", "selector"], "x", "type changed"),
        (["spec", "template", "spec", "containers"], [], "containers removed"),
    ],
)
def test_drift_needs_apply(path: list[Any], value: Any, why: str) -> None:
    live = mutate(path, value)
    assert needs_apply(DEPLOYMENT, live), why
    assert first_difference(DEPLOYMENT, live) is not None


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        ({"cpu": "1"}, {"cpu": "1000m"}),
        ({"cpu": 1}, {"cpu": "1"}),
        ({"cpu": "0.5"}, {"cpu": "500m"}),
        ({"cpu": 0.25}, {"cpu": "250m"}),
        ({"memory": "1Gi"}, {"memory": "1024Mi"}),
        ({"memory": "1G"}, {"memory": "1000M"}),
        ({"memory": "1e3"}, {"memory": "1k"}),
        ({"nvidia.com/gpu": 1}, {"nvidia.com/gpu": "1"}),
    ],
)
def test_quantities_are_compared_by_value(desired: dict[str, Any], live: dict[str, Any]) -> None:
    d = {"spec": {"resources": {"limits": desired, "requests": desired}}}
    lv = {"spec": {"resources": {"limits": live, "requests": live}}}
    assert not needs_apply(d, lv)


def test_quantity_normalisation_only_where_quantities_live() -> None:
    # A label "1" is not the label "1000m", and "01" is not "1".
    assert needs_apply({"metadata": {"labels": {"v": "1"}}}, {"metadata": {"labels": {"v": "1000m"}}})
    assert needs_apply({"spec": {"version": "01"}}, {"spec": {"version": "1"}})
    assert needs_apply({"spec": {"resources": {"limits": {"cpu": "1"}}}}, {"spec": {"resources": {"limits": {}}}})


def test_empty_dir_size_limit_is_a_quantity() -> None:
    d = {"spec": {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1024Mi"}}]}}
    lv = {"spec": {"volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]}}
    assert not needs_apply(d, lv)


def test_bools_are_not_numbers() -> None:
    assert needs_apply({"a": True}, {"a": 1})
    assert needs_apply({"a": 1}, {"a": True})
    assert needs_apply({"a": False}, {"a": 0})
    assert not needs_apply({"a": 1}, {"a": 1.0})


def test_zero_values_match_missing_live_keys() -> None:
    for zero in (None, "", 0, False, {}, []):
        assert not needs_apply({"spec": {"x": zero}}, {"spec": {}}), zero
    assert needs_apply({"spec": {"x": "y"}}, {"spec": {}})
    # ... but a zero desired value does not match a non-zero live value
    assert needs_apply({"spec": {"x": 0}}, {"spec": {"x": 3}})
    assert needs_apply({"spec": {"x": ""}}, {"spec": {"x": "y"}})


def test_name_keyed_lists_ignore_order_and_extra_entries() -> None:
    d = {"ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}
    lv = {
        "ports": [
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090},
            {"name": "extra", "port": 1},
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
        ]
    }
    assert not needs_apply(d, lv)
    lv["ports"][2]["port"] = 81
    assert needs_apply(d, lv)


def test_lists_without_unique_names_are_positional() -> None:
    d = {"mounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}]}
    assert not needs_apply(d, {"mounts": [{"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b"}]})
    assert needs_apply(d, {"mounts": [{"name": "v", "mountPath": "/b"}, {"name": "v", "mountPath": "/a"}]})


def test_top_level_identity_and_status_are_not_compared() -> None:
    d = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "status": {"phase": "X"}}
    assert not needs_apply(d, {"metadata": {"name": "x"}})
    d2 = {"metadata": {"name": "x", "resourceVersion": "1", "uid": "a"}}
    assert not needs_apply(d2, {"metadata": {"name": "x", "resourceVersion": "9", "uid": "b"}})


def test_owner_references_compare_by_name() -> None:
    ref = {"apiVersion": "fusioninfer.io/v1alpha1", "kind": "InferenceService", "name": "a", "uid": "u"}
    d = {"metadata": {"ownerReferences": [{**ref, "controller": True, "blockOwnerDeletion": True}]}}
    assert not needs_apply(d, copy.deepcopy(d))
    other = copy.deepcopy(d)
    other["metadata"]["ownerReferences"][0]["uid"] = "v"
    assert needs_apply(d, other)


def test_first_difference_names_the_path() -> None:
    diff = first_difference(DEPLOYMENT, mutate(["spec", "replicas"], 5))
    assert diff is not None
    assert diff.startswith(".spec.replicas")
    diff = first_difference(DEPLOYMENT, mutate([*C0, "image"], "x"))
    assert diff is not None
    assert "containers[name=main].image" in diff


# -- hash annotation ---------------------------------------------------------------------------------


def test_hash_annotation_detects_removed_fields() -> None:
    desired = with_hash_annotation(DEPLOYMENT)
    live = live_deployment()
    live["metadata"].setdefault("annotations", {})[APPLIED_HASH_ANNOTATION] = manifest_hash(DEPLOYMENT)
    assert not needs_apply(desired, live)
    smaller = copy.deepcopy(DEPLOYMENT)
    del smaller["spec"]["template"]["spec"]["containers"][0]["args"]
    # A plain subset test cannot see the removal ...
    assert not needs_apply(smaller, live)
    # ... the hash annotation can.
    assert needs_apply(with_hash_annotation(smaller), live)


def test_hash_is_stable_and_ignores_itself() -> None:
    h1 = manifest_hash(DEPLOYMENT)
    assert h1 == manifest_hash(copy.deepcopy(DEPLOYMENT))
    assert manifest_hash(with_hash_annotation(DEPLOYMENT)) == h1
    assert DEPLOYMENT["metadata"].get("annotations") is None, "with_hash_annotation must not mutate its input"


# -- properties --------------------------------------------------------------------------------------

keys = st.sampled_from(["a", "b", "c", "name", "spec", "x"])
scalars = st.one_of(st.booleans(), st.integers(-5, 5), st.text(alphabet="xyz01", min_size=0, max_size=3), st.none())
json_trees = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)
manifests = st.dictionaries(keys, json_trees, max_size=5)


def add_extras(tree: Any, extra: Any) -> Any:
    """A superset of `tree`: extra keys in every map (lists unchanged: they are atomic)."""
    if isinstance(tree, dict):
        out = {k: add_extras(v, extra) for k, v in tree.items()}
        out["zz_extra"] = extra
        return out
    if isinstance(tree, list):
        return [add_extras(v, extra) for v in tree]
    return tree


def is_zero(v: Any) -> bool:
    return v is None or v == "" or v is False or v == {} or v == [] or (type(v) is int and v == 0)


@given(manifests)
@settings(max_examples=200, deadline=None)
def test_prop_reflexive(d: dict[str, Any]) -> None:
    assert not needs_apply(d, copy.deepcopy(d))


@given(manifests, json_trees)
@settings(max_examples=200, deadline=None)
def test_prop_superset_needs_no_apply(d: dict[str, Any], extra: Any) -> None:
    assert not needs_apply(d, add_extras(d, extra))


@given(manifests, st.data())
@settings(max_examples=200, deadline=None)
def test_prop_changed_or_removed_leaf_needs_apply(d: dict[str, Any], data: st.DataObject) -> None:
    # Pick a top-level key whose value is a non-zero scalar, then change or drop it in live.
    candidates = [k for k, v in d.items() if not isinstance(v, dict | list) and not is_zero(v)]
    if not candidates:
        return
    key = data.draw(st.sampled_from(sorted(candidates)))
    live = copy.deepcopy(d)
    if data.draw(st.booleans()):
        del live[key]
    else:
        live[key] = ["a different type"]
    assert needs_apply(d, live)


@given(st.integers(min_value=0, max_value=10**6))
@settings(max_examples=100, deadline=None)
def test_prop_quantity_forms_agree(milli: int) -> None:
    value = Decimal(milli) / 1000
    forms = [f"{milli}m", format(value, "f"), f"{Decimal(milli) / 10**6:f}k"]
    parsed = {exact_value(f) for f in forms}
    assert parsed == {value}
    d = {"resources": {"requests": {"cpu": forms[0]}}}
    for f in forms[1:]:
        assert not needs_apply(d, {"resources": {"requests": {"cpu": f}}})
