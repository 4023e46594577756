"""The EndpointPickerConfig of a router role: per strategy, from weighted scorers, or raw.

Every generated config is one the picker image it runs on actually loads: the integration tests
start the real GIE v1.2.1 and llm-d v0.7.1 pickers on each (see docs/routing.md, "Supported
picker versions"):

* only plugin types the image registers: the GIE image knows the scorers/pickers below; P/D
  plugins and `load-aware-scorer` exist only in the llm-d image, which is then chosen;
* the prefix scorer's parameter is `blockSize` (GIE ignores the old `hashBlockSize` silently);
* every scorer carries an integer `weight` and scorers are listed before the picker (a scorer
  without a weight after the picker makes v1.2.1 dereference a nil pointer at start-up);
* GIE strategies use one profile and name `single-profile-handler`; P/D uses `prefill` and
  `decode` profiles. Its handler depends on the llm-d picker's version (read from the image tag):
  from v0.6 on, `disagg-profile-handler` with a decider plugin (`always-disagg-pd-decider`: every
  request gets a prefill leg) and `disagg-headers-handler`; before v0.6, `pd-profile-handler`
  with `threshold: 0` and `prefill-header-handler` (no `primaryPort`, which would switch it to
  data-parallel mode). v0.6 refuses the old parameters; v0.4/v0.5 do not know the new plugins.

Weights: the API takes decimals (seed 003 writes `weight: 2.0`), the picker only integers. All
weights are scaled by the smallest of 1, 10 or 100 that makes them whole, so ratios survive
(0.7/0.3 -> 7/3), then rounded half up, minimum 1.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from fusioninfer.api.images import image_version
from fusioninfer.api.router_spec import EndpointPickerPlugins, RoutingStrategy
from fusioninfer.api.v1alpha1 import Role

CONFIG_API_VERSION = "inference.networking.x-k8s.io/v1alpha1"
CONFIG_KIND = "EndpointPickerConfig"
CONFIG_KEY = "config.yaml"

# Scorers.
PREFIX_CACHE_SCORER = "prefix-cache-scorer"
KV_CACHE_SCORER = "kv-cache-utilization-scorer"
QUEUE_SCORER = "queue-scorer"
LORA_AFFINITY_SCORER = "lora-affinity-scorer"
LOAD_AWARE_SCORER = "load-aware-scorer"
# Pickers, filters, handlers.
MAX_SCORE_PICKER = "max-score-picker"
SINGLE_PROFILE_HANDLER = "single-profile-handler"
PD_PROFILE_HANDLER = "pd-profile-handler"
PREFILL_HEADER_HANDLER = "prefill-header-handler"
PREFILL_FILTER = "prefill-filter"
DECODE_FILTER = "decode-filter"
# llm-d v0.6+: the P/D handler delegates "prefill or not" to a decider plugin.
DISAGG_PROFILE_HANDLER = "disagg-profile-handler"
DISAGG_HEADERS_HANDLER = "disagg-headers-handler"
ALWAYS_DISAGG_DECIDER = "always-disagg-pd-decider"
DECIDER_SINCE = (0, 6)

PREFILL_PROFILE = "prefill"
DECODE_PROFILE = "decode"
DEFAULT_PROFILE = "default"

# Plugin types registered by registry.k8s.io/gateway-api-inference-extension/epp:v1.2.1 (runner.go).
GIE_PLUGIN_TYPES = frozenset(
    {
        PREFIX_CACHE_SCORER,
        MAX_SCORE_PICKER,
        "random-picker",
        "weighted-random-picker",
        SINGLE_PROFILE_HANDLER,
        KV_CACHE_SCORER,
        QUEUE_SCORER,
        LORA_AFFINITY_SCORER,
    }
)
# Scorer types of both images (the llm-d image registers the GIE ones too).
SCORER_TYPES = frozenset(
    {
        PREFIX_CACHE_SCORER,
        KV_CACHE_SCORER,
        QUEUE_SCORER,
        LORA_AFFINITY_SCORER,
        LOAD_AWARE_SCORER,
        "active-request-scorer",
        "session-affinity-scorer",
        "precise-prefix-cache-scorer",
        "no-hit-lru-scorer",
    }
)
PICKER_TYPES = frozenset({MAX_SCORE_PICKER, "random-picker", "weighted-random-picker"})

# Block size the prefix scorer hashes by: vLLM's default KV block (16 tokens) x 4. `autoTune`
# (default on) replaces it with what the engine reports; P/D's hashBlockSize must match it.
PREFIX_BLOCK_SIZE = 64
PREFIX_PARAMETERS: dict[str, Any] = {
    "blockSize": PREFIX_BLOCK_SIZE,
    "maxPrefixBlocksToMatch": 256,
    "lruCapacityPerServer": 31250,
}
SCORER_PARAMETERS: dict[str, dict[str, Any]] = {
    PREFIX_CACHE_SCORER: PREFIX_PARAMETERS,
    LOAD_AWARE_SCORER: {"threshold": 128},
}
# The weight of a strategy's lone scorer (any positive value behaves the same).
STRATEGY_WEIGHT = 100

STRATEGY_SCORER: dict[RoutingStrategy, str] = {
    RoutingStrategy.PREFIX_CACHE: PREFIX_CACHE_SCORER,
    RoutingStrategy.KV_CACHE_UTILIZATION: KV_CACHE_SCORER,
    RoutingStrategy.QUEUE_SIZE: QUEUE_SCORER,
    RoutingStrategy.LORA_AFFINITY: LORA_AFFINITY_SCORER,
    RoutingStrategy.PD_DISAGGREGATION: PREFIX_CACHE_SCORER,
}

# `endpointPicker.plugins` field -> plugin type, in the order they are listed in the config.
PLUGIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("prefix_cache_scorer", PREFIX_CACHE_SCORER),
    ("kv_cache_utilization_scorer", KV_CACHE_SCORER),
    ("queue_scorer", QUEUE_SCORER),
    ("lora_affinity_scorer", LORA_AFFINITY_SCORER),
    ("load_aware_scorer", LOAD_AWARE_SCORER),
)

WEIGHT_SCALES = (1, 10, 100)


def _list(value: Any) -> list[Any]:
    """A raw config's list, or nothing when it is not one.

    Validation rejects such configs; the builder still must not crash on one, as a raw config
    is user text that reaches it through paths that skipped validation (e.g. tests, tools).
    """
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class PickerConfig:
    """The config text for the ConfigMap, its parsed form, and what the image must support."""

    text: str
    document: dict[str, Any]
    raw: bool

    @property
    def plugin_types(self) -> list[str]:
        return [str(p.get("type")) for p in _list(self.document.get("plugins")) if isinstance(p, dict)]

    @property
    def needs_llmd_image(self) -> bool:
        """Whether some plugin type is unknown to the GIE image (P/D, load-aware, ...)."""
        return any(t not in GIE_PLUGIN_TYPES for t in self.plugin_types)


def integer_weights(weights: Mapping[str, float]) -> dict[str, int]:
    """Decimal API weights -> the picker's integers, keeping their ratios where possible."""
    scale = next(
        (s for s in WEIGHT_SCALES if all(abs(w * s - round(w * s)) < 1e-6 for w in weights.values())),
        WEIGHT_SCALES[-1],
    )
    return {name: max(1, math.floor(w * scale + 0.5)) for name, w in weights.items()}


def enabled_scorers(plugins: EndpointPickerPlugins | None) -> dict[str, float]:
    """Plugin type -> decimal weight of every enabled scorer in `endpointPicker.plugins`."""
    if plugins is None:
        return {}
    scorers: dict[str, float] = {}
    for field, plugin_type in PLUGIN_FIELDS:
        toggle = getattr(plugins, field)
        if toggle is not None and toggle.enabled:
            scorers[plugin_type] = float(toggle.weight)
    return scorers


def scorer_weights(role: Role) -> dict[str, int]:
    """The scorers and integer weights of a generated config: the user's, else the strategy's."""
    plugins = role.endpoint_picker.plugins if role.endpoint_picker is not None else None
    weighted = enabled_scorers(plugins)
    if weighted:
        return integer_weights(weighted)
    return {STRATEGY_SCORER[role.effective_strategy]: STRATEGY_WEIGHT}


def _plugin(plugin_type: str, name: str | None = None, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    plugin: dict[str, Any] = {"type": plugin_type}
    if name is not None:
        plugin["name"] = name
    if parameters:
        plugin["parameters"] = dict(parameters)
    return plugin


def _scorer_plugins(weights: Mapping[str, int]) -> list[dict[str, Any]]:
    return [_plugin(t, parameters=SCORER_PARAMETERS.get(t)) for t in weights]


def _profile(name: str, weights: Mapping[str, int], filters: Iterable[str] = ()) -> dict[str, Any]:
    refs: list[dict[str, Any]] = [{"pluginRef": f} for f in filters]
    refs += [{"pluginRef": t, "weight": w} for t, w in weights.items()]
    refs.append({"pluginRef": MAX_SCORE_PICKER})
    return {"name": name, "plugins": refs}


def _header() -> dict[str, Any]:
    return {"apiVersion": CONFIG_API_VERSION, "kind": CONFIG_KIND}


def single_profile_config(weights: Mapping[str, int]) -> dict[str, Any]:
    """GIE strategies: the scorers, the picker, one `default` profile, single-profile-handler."""
    return {
        **_header(),
        "plugins": [*_scorer_plugins(weights), _plugin(MAX_SCORE_PICKER), _plugin(SINGLE_PROFILE_HANDLER)],
        "schedulingProfiles": [_profile(DEFAULT_PROFILE, weights)],
    }


def legacy_pd_config(weights: Mapping[str, int]) -> dict[str, Any]:
    """llm-d v0.4/v0.5 P/D: decode is picked first, then a prefiller whose address goes in a header.

    `threshold: 0` always runs the prefill leg (a positive value skips it for requests whose
    uncached suffix is short; it reads the prefix scorer's state, so hashBlockSize must equal
    the prefix scorer's block size).
    """
    return {
        **_header(),
        "plugins": [
            _plugin(PREFILL_HEADER_HANDLER, parameters={"prefillProfile": PREFILL_PROFILE}),
            *_scorer_plugins(weights),
            _plugin(PREFILL_FILTER),
            _plugin(DECODE_FILTER),
            _plugin(MAX_SCORE_PICKER),
            _plugin(
                PD_PROFILE_HANDLER,
                parameters={
                    "threshold": 0,
                    "hashBlockSize": PREFIX_BLOCK_SIZE,
                    "prefillProfile": PREFILL_PROFILE,
                    "decodeProfile": DECODE_PROFILE,
                },
            ),
        ],
        "schedulingProfiles": [
            _profile(PREFILL_PROFILE, weights, [PREFILL_FILTER]),
            _profile(DECODE_PROFILE, weights, [DECODE_FILTER]),
        ],
    }


def pd_config(weights: Mapping[str, int]) -> dict[str, Any]:
    """llm-d v0.6+ P/D: the same two profiles; the disaggregation profile handler asks the
    always-disagg decider (the old `threshold: 0`: every request gets a prefill leg) and the
    headers handler passes the chosen prefiller to the decode pod's sidecar."""
    return {
        **_header(),
        "plugins": [
            _plugin(DISAGG_HEADERS_HANDLER),
            *_scorer_plugins(weights),
            _plugin(PREFILL_FILTER),
            _plugin(DECODE_FILTER),
            _plugin(MAX_SCORE_PICKER),
            _plugin(ALWAYS_DISAGG_DECIDER),
            _plugin(
                DISAGG_PROFILE_HANDLER,
                parameters={
                    "profiles": {"prefill": PREFILL_PROFILE, "decode": DECODE_PROFILE},
                    "deciders": {"prefill": ALWAYS_DISAGG_DECIDER},
                },
            ),
        ],
        "schedulingProfiles": [
            _profile(PREFILL_PROFILE, weights, [PREFILL_FILTER]),
            _profile(DECODE_PROFILE, weights, [DECODE_FILTER]),
        ],
    }


def uses_legacy_pd(pd_image: str | None) -> bool:
    """Whether the llm-d picker image predates the decider plugins (v0.6)."""
    version = image_version(pd_image)
    return version is not None and version[:2] < DECIDER_SINCE


def generated_config(role: Role, pd_image: str | None = None) -> dict[str, Any]:
    weights = scorer_weights(role)
    if role.effective_strategy is RoutingStrategy.PD_DISAGGREGATION:
        return legacy_pd_config(weights) if uses_legacy_pd(pd_image) else pd_config(weights)
    return single_profile_config(weights)


class _Dumper(yaml.SafeDumper):
    """Never emits anchors/aliases (`&id001`): the picker's YAML reader must see plain values."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(document: dict[str, Any]) -> str:
    """Deterministic YAML (insertion order kept: the order a person would write it).

    Memoized on the document's JSON form (which keeps the order): a handful of distinct
    configs serve every router, and emitting YAML was a third of a router service's reconcile.
    """
    return _dump_json(json.dumps(document, separators=(",", ":")))


@functools.lru_cache(maxsize=256)
def _dump_json(document: str) -> str:
    return yaml.dump(json.loads(document), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def picker_config(role: Role, pd_image: str | None = None) -> PickerConfig:
    """A raw `endpointPickerConfig` verbatim (it replaces everything), else the generated one
    (for P/D: in the shape the llm-d picker `pd_image` loads)."""
    if role.endpoint_picker_config is not None:
        parsed = yaml.safe_load(role.endpoint_picker_config)
        return PickerConfig(
            text=role.endpoint_picker_config, document=parsed if isinstance(parsed, dict) else {}, raw=True
        )
    document = generated_config(role, pd_image)
    return PickerConfig(text=dump(document), document=document, raw=False)


def unweighted_scorers_after_picker(document: Mapping[str, Any]) -> list[str]:
    """`profile/pluginRef` of known scorers without a weight listed after a picker.

    The v1.2.1 loader only defaults weights up to the first picker, then dereferences the nil
    weight: such a config crashes the picker. Used to warn about raw configs.
    """
    types = {
        str(p.get("name") or p.get("type")): str(p.get("type"))
        for p in _list(document.get("plugins"))
        if isinstance(p, dict)
    }
    found: list[str] = []
    for profile in _list(document.get("schedulingProfiles")):
        if not isinstance(profile, dict):
            continue
        seen_picker = False
        for ref in _list(profile.get("plugins")):
            if not isinstance(ref, dict):
                continue
            plugin_type = types.get(str(ref.get("pluginRef")), "")
            if plugin_type in PICKER_TYPES:
                seen_picker = True
            elif plugin_type in SCORER_TYPES and seen_picker and ref.get("weight") is None:
                found.append(f"{profile.get('name')}/{ref.get('pluginRef')}")
    return found
