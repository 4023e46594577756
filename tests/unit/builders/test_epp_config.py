"""EndpointPickerConfig per strategy, weighted scorers and raw configs.

The exact plugin names, parameters and weights matter: the picker decodes its config at
start-up and a wrong type name, a missing weight or an unknown parameter key either stops it or
silently does nothing (see shared/reference/third-party-apis.md §0 and §2).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.wrappers import InferenceServiceWrapper, pd_service

from fusioninfer.api.router_spec import RoutingStrategy
from fusioninfer.api.validation import parse
from fusioninfer.builders.epp_config import (
    GIE_PLUGIN_TYPES,
    PICKER_TYPES,
    SCORER_TYPES,
    image_version,
    integer_weights,
    picker_config,
    unweighted_scorers_after_picker,
)

VLLM = {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "Qwen/Qwen3-8B"]}
PREFIX_PARAMS = {"blockSize": 64, "maxPrefixBlocksToMatch": 256, "lruCapacityPerServer": 31250}
PLUGIN_FIELDS = {
    "prefixCacheScorer": "prefix-cache-scorer",
    "kvCacheUtilizationScorer": "kv-cache-utilization-scorer",
    "queueScorer": "queue-scorer",
    "loraAffinityScorer": "lora-affinity-scorer",
    "loadAwareScorer": "load-aware-scorer",
}


def _config(router: dict[str, Any], disaggregated: bool = False, pd_image: str | None = None) -> dict[str, Any]:
    service = InferenceServiceWrapper().namespace("ns").router(**router)
    if disaggregated:
        service.prefiller(container=VLLM).decoder(container=VLLM)
    else:
        service.worker(container=VLLM)
    isvc = parse(service.obj())
    assert isvc.router is not None
    config = picker_config(isvc.router, pd_image)
    loaded = yaml.safe_load(config.text)
    assert loaded == config.document, "the ConfigMap text must be exactly the document we reason about"
    return dict(loaded)


def _profile_refs(config: dict[str, Any], profile: str) -> list[dict[str, Any]]:
    return next(p["plugins"] for p in config["schedulingProfiles"] if p["name"] == profile)


# --- per strategy -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("strategy", "scorer"),
    [
        ("prefix-cache", "prefix-cache-scorer"),
        ("kv-cache-utilization", "kv-cache-utilization-scorer"),
        ("queue-size", "queue-scorer"),
        ("lora-affinity", "lora-affinity-scorer"),
    ],
)
def test_gie_strategy_config_is_exactly_one_weighted_scorer_a_picker_and_the_single_profile_handler(
    strategy: str, scorer: str
) -> None:
    config = _config({"strategy": strategy})
    expected_scorer: dict[str, Any] = {"type": scorer}
    if scorer == "prefix-cache-scorer":
        expected_scorer["parameters"] = PREFIX_PARAMS
    assert config == {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha1",
        "kind": "EndpointPickerConfig",
        "plugins": [expected_scorer, {"type": "max-score-picker"}, {"type": "single-profile-handler"}],
        "schedulingProfiles": [
            {"name": "default", "plugins": [{"pluginRef": scorer, "weight": 100}, {"pluginRef": "max-score-picker"}]}
        ],
    }
    assert set(p["type"] for p in config["plugins"]) <= GIE_PLUGIN_TYPES


def test_default_strategy_is_prefix_cache() -> None:
    assert _config({}) == _config({"strategy": "prefix-cache"})


def test_prefix_scorer_uses_block_size_never_the_ignored_hash_block_size() -> None:
    scorer = _config({"strategy": "prefix-cache"})["plugins"][0]
    assert scorer["parameters"]["blockSize"] == 64
    assert "hashBlockSize" not in scorer["parameters"]


def _assert_pd_profiles(config: dict[str, Any]) -> None:
    assert "single-profile-handler" not in [p["type"] for p in config["plugins"]]
    assert [p["name"] for p in config["schedulingProfiles"]] == ["prefill", "decode"]
    assert _profile_refs(config, "prefill") == [
        {"pluginRef": "prefill-filter"},
        {"pluginRef": "prefix-cache-scorer", "weight": 100},
        {"pluginRef": "max-score-picker"},
    ]
    assert _profile_refs(config, "decode") == [
        {"pluginRef": "decode-filter"},
        {"pluginRef": "prefix-cache-scorer", "weight": 100},
        {"pluginRef": "max-score-picker"},
    ]


def test_pd_config_for_current_llmd_uses_the_disagg_handler_with_a_decider() -> None:
    """llm-d v0.6+ (the default image): the handler needs a decider plugin and refuses the old
    threshold parameters."""
    config = _config({"strategy": "pd-disaggregation"}, disaggregated=True)
    types = [p["type"] for p in config["plugins"]]
    assert types == [
        "disagg-headers-handler",
        "prefix-cache-scorer",
        "prefill-filter",
        "decode-filter",
        "max-score-picker",
        "always-disagg-pd-decider",
        "disagg-profile-handler",
    ]
    handler = config["plugins"][-1]
    assert handler["parameters"] == {
        "profiles": {"prefill": "prefill", "decode": "decode"},
        "deciders": {"prefill": "always-disagg-pd-decider"},
    }
    _assert_pd_profiles(config)
    isvc = parse(pd_service(VLLM, VLLM))
    assert isvc.router is not None
    assert picker_config(isvc.router).needs_llmd_image


@pytest.mark.parametrize("image", ["ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0", "mirror.local/llmd:0.5.1"])
def test_pd_config_for_llmd_before_v0_6_keeps_the_threshold_handler(image: str) -> None:
    config = _config({"strategy": "pd-disaggregation"}, disaggregated=True, pd_image=image)
    types = [p["type"] for p in config["plugins"]]
    assert types == [
        "prefill-header-handler",
        "prefix-cache-scorer",
        "prefill-filter",
        "decode-filter",
        "max-score-picker",
        "pd-profile-handler",
    ]
    handler = config["plugins"][-1]
    assert handler["parameters"] == {
        "threshold": 0,
        "hashBlockSize": 64,
        "prefillProfile": "prefill",
        "decodeProfile": "decode",
    }
    assert "primaryPort" not in handler["parameters"], "a primaryPort switches the handler to data-parallel mode"
    _assert_pd_profiles(config)
    # The P/D handler's block size must equal the prefix scorer's, or threshold > 0 misjudges hits.
    prefix = next(p for p in config["plugins"] if p["type"] == "prefix-cache-scorer")
    assert handler["parameters"]["hashBlockSize"] == prefix["parameters"]["blockSize"]


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1", (0, 7, 1)),
        ("registry:5000/llmd:0.5", (0, 5, 0)),
        ("llmd:latest", None),
        ("llmd", None),
        ("llmd@sha256:abc", None),
        ("registry:5000/llmd", None),
    ],
)
def test_image_version_reads_the_tag(image: str, version: tuple[int, int, int] | None) -> None:
    assert image_version(image) == version


# --- weighted scorers (seed 003) ----------------------------------------------------------------
def test_seed_003_weights_replace_the_strategy_scorer_and_need_the_llmd_image() -> None:
    router = {
        "endpointPicker": {
            "plugins": {
                "loadAwareScorer": {"enabled": True, "weight": 1.0},
                "prefixCacheScorer": {"enabled": True, "weight": 2.0},
                "kvCacheUtilizationScorer": {"enabled": True, "weight": 1.0},
            }
        }
    }
    config = _config(router)
    assert [p["type"] for p in config["plugins"]] == [
        "prefix-cache-scorer",
        "kv-cache-utilization-scorer",
        "load-aware-scorer",
        "max-score-picker",
        "single-profile-handler",
    ]
    assert config["plugins"][2]["parameters"] == {"threshold": 128}
    assert _profile_refs(config, "default") == [
        {"pluginRef": "prefix-cache-scorer", "weight": 2},
        {"pluginRef": "kv-cache-utilization-scorer", "weight": 1},
        {"pluginRef": "load-aware-scorer", "weight": 1},
        {"pluginRef": "max-score-picker"},
    ]
    isvc = parse(InferenceServiceWrapper().namespace("ns").router(**router).worker(container=VLLM).obj())
    assert isvc.router is not None
    assert picker_config(isvc.router).needs_llmd_image


def test_disabled_scorers_are_left_out_and_gie_only_scorers_keep_the_gie_image() -> None:
    router = {
        "strategy": "queue-size",
        "endpointPicker": {
            "plugins": {
                "prefixCacheScorer": {"weight": 3},
                "queueScorer": {"enabled": False, "weight": 9},
                "kvCacheUtilizationScorer": {"weight": 2},
            }
        },
    }
    config = _config(router)
    assert _profile_refs(config, "default") == [
        {"pluginRef": "prefix-cache-scorer", "weight": 3},
        {"pluginRef": "kv-cache-utilization-scorer", "weight": 2},
        {"pluginRef": "max-score-picker"},
    ]
    isvc = parse(InferenceServiceWrapper().namespace("ns").router(**router).worker(container=VLLM).obj())
    assert isvc.router is not None
    assert not picker_config(isvc.router).needs_llmd_image


def test_weighted_scorers_go_into_both_pd_profiles() -> None:
    router = {
        "strategy": "pd-disaggregation",
        "endpointPicker": {"plugins": {"queueScorer": {"weight": 1}, "prefixCacheScorer": {"weight": 2}}},
    }
    config = _config(router, disaggregated=True)
    for profile, filt in (("prefill", "prefill-filter"), ("decode", "decode-filter")):
        assert _profile_refs(config, profile) == [
            {"pluginRef": filt},
            {"pluginRef": "prefix-cache-scorer", "weight": 2},
            {"pluginRef": "queue-scorer", "weight": 1},
            {"pluginRef": "max-score-picker"},
        ]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ({"a": 2.0, "b": 1.0}, {"a": 2, "b": 1}),
        ({"a": 0.7, "b": 0.3}, {"a": 7, "b": 3}),  # ratios survive: scaled by 10
        ({"a": 0.25, "b": 1}, {"a": 25, "b": 100}),  # scaled by 100
        ({"a": 0.001, "b": 1}, {"a": 1, "b": 100}),  # cannot be exact: x100, rounded, min 1
        ({"a": 1 / 3, "b": 2 / 3}, {"a": 33, "b": 67}),  # half up, not banker's rounding
        ({"a": 1000}, {"a": 1000}),
    ],
)
def test_integer_weights(weights: dict[str, float], expected: dict[str, int]) -> None:
    assert integer_weights(weights) == expected


# --- raw config ---------------------------------------------------------------------------------
RAW = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: prefix-cache-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 70
  - pluginRef: kv-cache-utilization-scorer
    weight: 30
  - pluginRef: max-score-picker
"""


def test_raw_config_is_used_verbatim_and_replaces_strategy() -> None:
    isvc = parse(
        InferenceServiceWrapper()
        .namespace("ns")
        .router("queue-size", endpointPickerConfig=RAW)
        .worker(container=VLLM)
        .obj()
    )
    assert isvc.router is not None
    config = picker_config(isvc.router)
    assert config.text == RAW
    assert config.raw
    assert not config.needs_llmd_image


def test_raw_config_with_llmd_plugins_needs_the_llmd_image() -> None:
    raw = RAW.replace("- type: kv-cache-utilization-scorer", "- type: load-aware-scorer").replace(
        "pluginRef: kv-cache-utilization-scorer", "pluginRef: load-aware-scorer"
    )
    isvc = parse(
        InferenceServiceWrapper().namespace("ns").router(endpointPickerConfig=raw).worker(container=VLLM).obj()
    )
    assert isvc.router is not None
    assert picker_config(isvc.router).needs_llmd_image


def test_unweighted_scorer_after_picker_is_found() -> None:
    doc = yaml.safe_load(RAW)
    assert unweighted_scorers_after_picker(doc) == []
    doc["schedulingProfiles"][0]["plugins"] = [
        {"pluginRef": "prefix-cache-scorer"},  # before the picker: defaulted to 1, fine
        {"pluginRef": "max-score-picker"},
        {"pluginRef": "kv-cache-utilization-scorer"},  # after it: nil weight, crash
    ]
    assert unweighted_scorers_after_picker(doc) == ["default/kv-cache-utilization-scorer"]


# --- properties ---------------------------------------------------------------------------------
_toggle = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"enabled": st.booleans(), "weight": st.floats(min_value=0.001, max_value=1000, allow_nan=False)}
    ),
)


@st.composite
def _routers(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    disaggregated = draw(st.booleans())
    strategies = [s.value for s in RoutingStrategy if s is not RoutingStrategy.PD_DISAGGREGATION or disaggregated]
    router: dict[str, Any] = {}
    strategy = draw(st.one_of(st.none(), st.sampled_from(strategies)))
    if strategy is not None:
        router["strategy"] = strategy
    plugins = {field: t for field in PLUGIN_FIELDS if (t := draw(_toggle)) is not None}
    if any(t["enabled"] for t in plugins.values()):
        router["endpointPicker"] = {"plugins": plugins}
    return router, disaggregated


@settings(max_examples=150, deadline=None)
@given(_routers())
def test_every_generated_config_satisfies_the_loader_rules(case: tuple[dict[str, Any], bool]) -> None:
    router, disaggregated = case
    config = _config(router, disaggregated)
    plugins = config["plugins"]
    names = [p.get("name", p["type"]) for p in plugins]
    assert len(names) == len(set(names)), "plugin names must be unique"
    types = {p.get("name", p["type"]): p["type"] for p in plugins}
    for plugin in plugins:
        assert "hashBlockSize" not in (plugin.get("parameters") or {}) or plugin["type"] == "pd-profile-handler"

    handlers = [t for t in types.values() if t.endswith("profile-handler")]
    assert len(handlers) == 1, "exactly one profile handler"
    profiles = config["schedulingProfiles"]
    if handlers[0] == "single-profile-handler":
        assert len(profiles) == 1
    else:
        assert handlers[0] == "disagg-profile-handler"
        assert {p["name"] for p in profiles} == {"prefill", "decode"}
        assert "disagg-headers-handler" in types.values()
        decider = next(p for p in plugins if p["type"] == "disagg-profile-handler")["parameters"]["deciders"]["prefill"]
        assert decider in types, "the handler's decider is a declared plugin"

    for profile in profiles:
        refs = profile["plugins"]
        assert all(r["pluginRef"] in types for r in refs), "every ref names a declared plugin"
        kinds = [types[r["pluginRef"]] for r in refs]
        assert kinds[-1] in PICKER_TYPES, "the picker comes last"
        assert sum(k in PICKER_TYPES for k in kinds) == 1, "one picker"
        scorers = [r for r in refs if types[r["pluginRef"]] in SCORER_TYPES]
        assert scorers, "every profile scores"
        for ref in scorers:
            assert isinstance(ref["weight"], int)
            assert not isinstance(ref["weight"], bool)
            assert ref["weight"] >= 1
    # The image the config needs: GIE unless some type is llm-d only.
    service = InferenceServiceWrapper().namespace("ns").router(**router)
    if disaggregated:
        service.prefiller(container=VLLM).decoder(container=VLLM)
    else:
        service.worker(container=VLLM)
    isvc = parse(service.obj())
    assert isvc.router is not None
    needs_llmd = picker_config(isvc.router).needs_llmd_image
    assert needs_llmd == any(t not in GIE_PLUGIN_TYPES for t in types.values())
    if not needs_llmd:
        assert "load-aware-scorer" not in types.values()
        assert "disagg-profile-handler" not in types.values()
