"""The reconciler's memo gives exactly what parse + build + hash would, and reuses it only while
every input is unchanged: a stale answer here would mean an edit that never reaches the pods."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from tests.support.wrappers import InferenceServiceWrapper

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, build
from fusioninfer.controller import desired as desired_module
from fusioninfer.controller.desired import DesiredCache
from fusioninfer.runtime.diff import with_hash_annotation
from fusioninfer.runtime.metrics import RuntimeMetrics

Manifest = dict[str, Any]


def stored(name: str = "svc", *, replicas: int = 2, router: bool = False, generation: int = 1) -> Manifest:
    """An InferenceService as the apiserver stores it (uid, generation, resourceVersion)."""
    svc = InferenceServiceWrapper(name).namespace("ns").metadata(uid=f"uid-{name}", generation=generation)
    if router:
        svc.router("prefix-cache", httproute={"parentRefs": [{"name": "gw"}]})
    manifest = svc.worker(replicas=replicas, image="vllm/vllm-openai:v0.11.0", gpus=1).obj()
    manifest["metadata"]["resourceVersion"] = "100"
    return manifest


def fresh(raw: Manifest, options: BuildOptions) -> list[Manifest]:
    return [with_hash_annotation(m) for m in build(parse(raw), options).objects]


def options(uid: str = "uid-svc", **live: int) -> BuildOptions:
    return BuildOptions(owner_uid=uid, live_replicas=dict(live))


class Counting:
    """Counts calls of the module's `parse` and `build` (the work the memo is there to save)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parses = self.builds = 0
        real_parse, real_build = desired_module.parse, desired_module.build

        def counted_parse(raw: Any) -> Any:
            self.parses += 1
            return real_parse(raw)

        def counted_build(isvc: Any, opts: Any) -> Any:
            self.builds += 1
            return real_build(isvc, opts)

        monkeypatch.setattr(desired_module, "parse", counted_parse)
        monkeypatch.setattr(desired_module, "build", counted_build)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    return Counting(monkeypatch)


def test_a_status_echo_reuses_the_parsed_and_built_service(counting: Counting) -> None:
    memo, raw = DesiredCache(), stored()
    first = memo.desired(raw, lambda _: options())
    echoed = copy.deepcopy(raw)
    echoed["metadata"]["resourceVersion"] = "101"
    echoed["status"] = {"phase": "Running"}
    again = memo.desired(echoed, lambda _: options())
    assert again.result is first.result
    assert (counting.parses, counting.builds) == (1, 1)
    assert again.result.objects == fresh(raw, options())


def test_a_spec_edit_is_built_again(counting: Counting) -> None:
    memo = DesiredCache()
    memo.desired(stored(replicas=2), lambda _: options())
    edited = stored(replicas=5, generation=2)
    got = memo.desired(edited, lambda _: options())
    assert got.result.objects == fresh(edited, options())
    (deployment,) = [o for o in got.result.objects if o["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 5
    assert (counting.parses, counting.builds) == (2, 2)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: m["metadata"].update(labels={"team": "ml"}), id="labels"),
        pytest.param(lambda m: m["metadata"].update(annotations={"note": "x"}), id="annotations"),
        pytest.param(lambda m: m["metadata"].update(uid="recreated"), id="uid (deleted and created again)"),
    ],
)
def test_metadata_the_generation_does_not_count_is_parsed_again(counting: Counting, change: Any) -> None:
    memo, raw = DesiredCache(), stored()
    memo.desired(raw, lambda _: options())
    changed = copy.deepcopy(raw)
    change(changed)
    memo.desired(changed, lambda _: options())
    assert counting.parses == 2


def test_new_options_rebuild_without_parsing_again(counting: Counting) -> None:
    memo, raw = DesiredCache(), stored()
    memo.desired(raw, lambda _: options())
    got = memo.desired(raw, lambda _: options(**{"svc-inference": 7}))
    assert got.result.objects == fresh(raw, options(**{"svc-inference": 7}))
    assert (counting.parses, counting.builds) == (1, 2)


def test_options_are_asked_for_with_the_parsed_service() -> None:
    seen: list[str] = []
    DesiredCache().desired(stored(), lambda isvc: seen.append(isvc.name) or options())
    assert seen == ["svc"]


def test_an_invalid_spec_raises_every_time_from_one_parse(counting: Counting) -> None:
    memo, raw = DesiredCache(), stored()
    raw["spec"]["roles"][0]["replicas"] = -1
    errors = []
    for _ in range(2):
        with pytest.raises(InvalidSpec) as caught:
            memo.desired(raw, lambda _: options())
        errors.append(caught.value)
    assert errors[0] is not errors[1]  # a fresh exception: re-raising one would grow its traceback
    assert errors[0].errors == errors[1].errors
    assert any("replicas" in e.path for e in errors[0].errors)
    assert counting.parses == 1


def test_a_service_without_generation_is_never_memoized(counting: Counting) -> None:
    memo, raw = DesiredCache(), stored()
    del raw["metadata"]["generation"]
    memo.desired(raw, lambda _: options())
    memo.desired(raw, lambda _: options())
    assert counting.parses == 2
    assert len(memo) == 0


def test_the_least_recently_used_service_goes_first(counting: Counting) -> None:
    memo = DesiredCache(size=2)
    a, b, c = stored("a"), stored("b"), stored("c")
    for raw in (a, b, a, c):  # b is now the least recently used
        memo.desired(raw, lambda _: options())
    assert len(memo) == 2
    memo.desired(a, lambda _: options())
    assert counting.parses == 3
    memo.desired(b, lambda _: options())
    assert counting.parses == 4


def test_lookups_are_counted_as_hits_changes_and_misses() -> None:
    """The counter tells whether the memo is big enough for the fleet: misses after the first
    pass mean services were evicted before they came back."""
    metrics = RuntimeMetrics(CollectorRegistry())
    memo = DesiredCache(size=1, metrics=metrics)
    memo.desired(stored("a"), lambda _: options())  # miss: new
    memo.desired(stored("a"), lambda _: options())  # hit
    memo.desired(stored("a", generation=2), lambda _: options())  # changed
    memo.desired(stored("b"), lambda _: options())  # miss: new, evicts a
    memo.desired(stored("a", generation=2), lambda _: options())  # miss: evicted

    def count(result: str) -> float:
        value = metrics.registry.get_sample_value("fusioninfer_reconcile_memo_lookups_total", {"result": result})
        return value or 0.0

    assert (count("hit"), count("changed"), count("miss")) == (1, 1, 3)


def test_a_deleted_service_is_forgotten(counting: Counting) -> None:
    memo, raw = DesiredCache(), stored()
    memo.desired(raw, lambda _: options())
    memo.forget("ns", "svc")
    assert len(memo) == 0


def live_copy(desired: Manifest, version: str = "7") -> Manifest:
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="child-uid", resourceVersion=version)
    live["status"] = {"replicas": 2}
    return live


def test_a_live_child_that_matched_is_not_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    memo, raw = DesiredCache(), stored()
    (desired,) = memo.desired(raw, lambda _: options()).result.objects
    live = live_copy(desired)
    walks: list[int] = []
    real = desired_module.first_difference
    monkeypatch.setattr(desired_module, "first_difference", lambda d, lv: walks.append(1) or real(d, lv))
    assert memo.difference(raw, desired, live) is None
    assert memo.difference(raw, desired, live) is None
    assert len(walks) == 1


def test_drift_in_a_live_child_is_still_found() -> None:
    """Somebody scaled our Deployment by hand: a new resourceVersion, so it is compared again."""
    memo, raw = DesiredCache(), stored()
    (desired,) = memo.desired(raw, lambda _: options()).result.objects
    assert memo.difference(raw, desired, live_copy(desired)) is None
    drifted = live_copy(desired, version="8")
    drifted["spec"]["replicas"] = 9
    assert memo.difference(raw, desired, drifted) == ".spec.replicas: 2 != live 9"


def test_a_changed_desired_child_is_compared_again() -> None:
    memo = DesiredCache()
    (before,) = memo.desired(stored(), lambda _: options()).result.objects
    live = live_copy(before)
    assert memo.difference(stored(), before, live) is None
    edited = stored(replicas=3, generation=2)
    (after,) = memo.desired(edited, lambda _: options()).result.objects
    assert memo.difference(edited, after, live) is not None


def test_a_missing_child_is_a_difference() -> None:
    memo, raw = DesiredCache(), stored()
    (desired,) = memo.desired(raw, lambda _: options()).result.objects
    assert memo.difference(raw, desired, None) == "object does not exist"


# What can happen to a stored service between two reconciles, and whether it bumps the generation.
EVENTS = st.sampled_from(["status", "replicas", "router", "labels", "live-replicas", "recreate"])


@settings(max_examples=40, deadline=None)
@given(st.lists(EVENTS, min_size=1, max_size=8))
def test_the_memo_always_answers_what_a_fresh_build_would(events: list[str]) -> None:
    memo, raw, live = DesiredCache(), stored(), {}
    generation, version = 1, 100
    for event in events:
        raw = copy.deepcopy(raw)
        version += 1
        raw["metadata"]["resourceVersion"] = str(version)
        if event == "status":
            raw["status"] = {"observedGeneration": generation}
        elif event == "replicas":
            generation += 1
            raw["spec"]["roles"][-1]["replicas"] = raw["spec"]["roles"][-1]["replicas"] % 4 + 1
        elif event == "router":
            generation += 1
            roles = raw["spec"]["roles"]
            if roles[0]["componentType"] == "router":
                roles.pop(0)
            else:
                roles.insert(0, {"name": "router", "componentType": "router", "strategy": "prefix-cache"})
        elif event == "labels":
            raw["metadata"]["labels"] = {"n": str(version)}
        elif event == "live-replicas":
            live = {"svc-inference": version % 5}
        elif event == "recreate":
            raw["metadata"]["uid"] = f"uid-{version}"
        raw["metadata"]["generation"] = generation
        opts = options(raw["metadata"]["uid"], **live)
        assert memo.desired(raw, lambda _, o=opts: o).result.objects == fresh(raw, opts)
