"""Property-based: any InferenceService-shaped document is either rejected with a message, or it validates
and renders into well-formed children; nothing ever crashes, and rendering is deterministic.

Two generators: `valid_services()` builds documents that follow every rule (so the validator must accept
them: it is not stricter than the rules say), and `any_services()` mixes those with deliberately broken ones
(wrong types, invalid names, broken topologies, router fields on serving roles, negative or huge numbers,
random extra keys, names with a trailing newline, malformed ports, HTTPRoute fragments and picker configs).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fusioninfer.api.errors import InvalidSpec
from fusioninfer.api.naming import service_level_names
from fusioninfer.api.v1alpha1 import InferenceService
from fusioninfer.api.validation import parse
from fusioninfer.builders import BuildOptions, Capabilities, build
from fusioninfer.builders.kinds import sort_key

# The longest service name whose service-level children (picker, pool, gateway...) all fit.
MAX_SERVICE_NAME = max(n for n in range(1, 64) if all(b.fits for b in service_level_names("s" * n)))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
API_VERSION = "fusioninfer.io/v1alpha1"
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

# --- pieces ----------------------------------------------------------------------------------------
IMAGES = [
    "vllm/vllm-openai:v0.11.0",
    "vllm/vllm-openai:v0.8.5",
    "lmsysorg/sglang:v0.5.3",
    "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1",
    "registry.local/custom-server:1",
    "busybox",
]
ARGS = st.lists(
    st.sampled_from(
        [
            "--model",
            "Qwen/Qwen3-8B",
            "--port",
            "9000",
            "--port=8100",
            "--tensor-parallel-size",
            "8",
            "--kv-transfer-config",
            '{"kv_connector":"NixlConnector","kv_role":"kv_both"}',
            '{"kv_connector":"PyNcclConnector","kv_role":"kv_producer"}',
            "--enable-lora",
            "serve",
        ]
    ),
    max_size=6,
)
COMMANDS = st.one_of(
    st.just(["vllm", "serve"]),
    st.just(["python3", "-m", "sglang.launch_server"]),
    st.just(["sh", "-c", "vllm serve --model m"]),
)
QUANTITIES = st.sampled_from(["1", "500m", "2", "8Gi", "1.5", "100Mi", "0"])
SUFFIX = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=0, max_size=20)


_LOWER = "abcdefghijklmnopqrstuvwxyz"
_END = _LOWER + "0123456789"


@functools.cache
def dns_label(min_size: int = 1, max_size: int = 20) -> st.SearchStrategy[str]:
    """DNS-1035 labels of min_size..max_size characters (cheaper than st.from_regex)."""

    def join(parts: tuple[str, str, str, int]) -> str:
        head, body, tail, length = parts
        if length == 1:
            return head
        body = (body + "a" * length)[: length - 2]
        return head + body + tail

    return st.tuples(
        st.sampled_from(_LOWER),
        st.text(alphabet=_END + "-", max_size=max(max_size - 2, 0)),
        st.sampled_from(_END),
        st.integers(min_size, max_size),
    ).map(join)


PORTS = st.lists(
    st.fixed_dictionaries(
        {"containerPort": st.integers(1, 65535)}, optional={"name": st.sampled_from(["http", "metrics", "grpc"])}
    ),
    max_size=2,
)
RESOURCES = st.fixed_dictionaries(
    {
        "limits": st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), QUANTITIES),
        "requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), QUANTITIES),
    }
)
CONTAINER = st.fixed_dictionaries(
    {"image": st.sampled_from(IMAGES)},
    optional={"command": COMMANDS, "args": ARGS, "ports": PORTS, "resources": RESOURCES},
)
CONTAINER_NAMES = st.lists(dns_label(1, 12), min_size=1, max_size=3, unique=True)
POD_SPEC_EXTRA = st.fixed_dictionaries(
    {},
    optional={
        "nodeSelector": st.fixed_dictionaries({"gpu": st.sampled_from(["a100", "l4"])}),
        "schedulerName": st.sampled_from(["volcano", "default-scheduler"]),
    },
)
TEMPLATE_METADATA = st.fixed_dictionaries(
    {},
    optional={
        "labels": st.dictionaries(st.sampled_from(["team", "app.kubernetes.io/name", "tier"]), dns_label()),
        "annotations": st.dictionaries(st.sampled_from(["note", "fusioninfer.io/x"]), st.text(max_size=10)),
    },
)


@st.composite
def containers(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(CONTAINER_NAMES)
    bodies = draw(st.lists(CONTAINER, min_size=len(names), max_size=len(names)))
    return [{"name": name, **body} for name, body in zip(names, bodies, strict=True)]


@st.composite
def template(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"spec": {"containers": draw(containers()), **draw(POD_SPEC_EXTRA)}}
    if draw(st.booleans()):
        out["metadata"] = draw(TEMPLATE_METADATA)
    return out


PERCENT = st.integers(0, 100).map(lambda n: f"{n}%")
INT_OR_PERCENT = st.one_of(st.integers(0, 5), PERCENT)


def _scaled(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    share = int(value.rstrip("%")) * replicas
    return -(-share // 100) if round_up else share // 100


@st.composite
def rollout(draw: st.DrawFn, multinode: bool, replicas: int) -> dict[str, Any]:
    out: dict[str, Any] = draw(
        st.fixed_dictionaries({}, optional={"maxSurge": INT_OR_PERCENT, "maxUnavailable": INT_OR_PERCENT})
    )
    surge, unavailable = out.get("maxSurge", 0), out.get("maxUnavailable", 1)
    if surge in (0, "0%") and unavailable in (0, "0%"):
        out["maxUnavailable"] = 1
    # A LeaderWorkerSet scales percentages by its replica groups: both rounding to 0 never rolls.
    if (
        multinode
        and replicas > 0
        and _scaled(surge, replicas, True) == 0
        and _scaled(unavailable, replicas, False) == 0
    ):
        out["maxUnavailable"] = 1
    if multinode and draw(st.booleans()):
        out["partition"] = draw(st.integers(0, 5))
    return out


EPP_CONFIGS = [
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n"
    "plugins:\n- type: queue-scorer\n- type: max-score-picker\n"
    "schedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n    weight: 1\n"
    "  - pluginRef: max-score-picker\n",
    "kind: EndpointPickerConfig\n",
]
SCORERS = ["prefixCacheScorer", "kvCacheUtilizationScorer", "queueScorer", "loraAffinityScorer", "loadAwareScorer"]


@st.composite
def plugins(draw: st.DrawFn, at_least_one_enabled: bool) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(SCORERS), min_size=1 if at_least_one_enabled else 0, unique=True))
    out = {
        name: draw(
            st.fixed_dictionaries(
                {}, optional={"enabled": st.booleans(), "weight": st.floats(0.5, 100, allow_nan=False)}
            )
        )
        for name in chosen
    }
    if at_least_one_enabled:
        out[chosen[0]]["enabled"] = True
    return out


@st.composite
def httproute(draw: st.DrawFn) -> dict[str, Any]:
    route: dict[str, Any] = {}
    if draw(st.booleans()):
        route["parentRefs"] = [{"name": draw(dns_label())} for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        route["hostnames"] = ["llm.example.com"]
    if draw(st.booleans()):
        route["rules"] = [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": draw(st.sampled_from(["/", "/v1"]))}}],
                **draw(st.fixed_dictionaries({}, optional={"timeouts": st.just({"request": "300s"})})),
            }
        ]
    return route


@st.composite
def router_role(draw: st.DrawFn, name: str, disaggregated: bool) -> dict[str, Any]:
    role: dict[str, Any] = {"name": name, "componentType": "router"}
    strategies = ["prefix-cache", "kv-cache-utilization", "queue-size", "lora-affinity"]
    if disaggregated:
        strategies.append("pd-disaggregation")
    if draw(st.booleans()):
        role["strategy"] = draw(st.sampled_from(strategies))
    if draw(st.booleans()):
        role["httproute"] = draw(httproute())
    if draw(st.booleans()):
        role["gateway"] = {"className": draw(st.sampled_from(["istio", "kgateway"]))}
    config = draw(st.booleans())
    if config:
        role["endpointPickerConfig"] = draw(st.sampled_from(EPP_CONFIGS))
    picker = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "replicas": st.integers(0, 3),
                "image": st.just("registry.local/epp:1"),
                "extraArgs": st.just(["--v=4"]),
            },
        )
    )
    if not config and draw(st.booleans()):
        picker["plugins"] = draw(plugins(at_least_one_enabled=True))
    if picker:
        role["endpointPicker"] = picker
    if draw(st.booleans()):
        role["template"] = {"metadata": {"labels": {"team": "ml"}}, "spec": {"nodeSelector": {"pool": "cpu"}}}
    return role


@st.composite
def serving_role(draw: st.DrawFn, name: str, ctype: str, max_multinode_name: bool) -> dict[str, Any]:
    role: dict[str, Any] = {"name": name, "componentType": ctype, "template": draw(template())}
    if draw(st.booleans()):
        role[draw(st.sampled_from(["replicas", "roleReplicas"]))] = draw(st.integers(0, 10000))
    engine = draw(st.sampled_from([None, "auto", "vllm", "sglang"]))
    if engine is not None:
        role["engine"] = engine
    nodes = 1
    if max_multinode_name:
        nodes = draw(st.integers(1, 64))
        if draw(st.booleans()):
            multinode: dict[str, Any] = {"nodeCount": nodes}
            if engine != "sglang" and draw(st.booleans()):
                multinode["backend"] = draw(st.sampled_from(["ray", "mp"]))
                if multinode["backend"] == "mp":
                    _mp_capable_images(role)
            if draw(st.booleans()):
                multinode["rewriteCommand"] = draw(st.booleans())
            role["multinode"] = multinode
        else:
            role["podReplicas"] = nodes
    if draw(st.booleans()):
        replicas = role.get("replicas", role.get("roleReplicas", 1))
        role["rollout"] = draw(rollout(multinode=nodes >= 2, replicas=replicas))
    return role


def _mp_capable_images(role: dict[str, Any]) -> None:
    """vLLM's mp backend across nodes needs 0.11.1 or newer (api/engine_rules.py)."""
    for container in role["template"]["spec"]["containers"]:
        if str(container.get("image", "")).startswith("vllm/vllm-openai:"):
            container["image"] = "vllm/vllm-openai:v0.11.1"


def _drop_tensor_parallel(role: dict[str, Any]) -> None:
    """Remove `--tensor-parallel-size` (and the word after it) from every container's argv."""
    for container in role["template"]["spec"]["containers"]:
        for key in ("command", "args"):
            words = container.get(key)
            if not isinstance(words, list):
                continue
            kept: list[Any] = []
            skip = False
            for word in words:
                if skip:
                    skip = False
                elif word == "--tensor-parallel-size":
                    skip = True
                elif not str(word).startswith("--tensor-parallel-size="):
                    kept.append(word)
            container[key] = kept


def _fit_gpus_to_parallelism(role: dict[str, Any]) -> None:
    """TP x PP must equal GPUs per pod x pods per replica (api/engine_rules.py): make the GPU
    limit fit the drawn `--tensor-parallel-size`, or drop the limit where it cannot."""
    nodes = (role.get("multinode") or {}).get("nodeCount") or role.get("podReplicas") or 1
    for container in role["template"]["spec"]["containers"]:
        words = [str(w) for key in ("command", "args") for w in container.get(key) or []]
        tp = next((int(words[i + 1]) for i, w in enumerate(words[:-1])
                   if w == "--tensor-parallel-size" and words[i + 1].isdigit()), None)  # fmt: skip
        limits = (container.get("resources") or {}).get("limits") or {}
        if tp is None or not str(limits.get("nvidia.com/gpu", "")).isdigit():
            continue
        if tp % nodes == 0:
            limits["nvidia.com/gpu"] = str(tp // nodes)
        else:
            del limits["nvidia.com/gpu"]


@st.composite
def valid_services(draw: st.DrawFn) -> dict[str, Any]:
    """A document that follows every rule of issue 2."""
    service = draw(dns_label(1, MAX_SERVICE_NAME))
    disaggregated = draw(st.booleans())
    types = ["prefiller", "decoder"] if disaggregated else ["worker"]
    if disaggregated:
        types += draw(st.lists(st.sampled_from(["prefiller", "decoder"]), max_size=2))
    with_router = draw(st.booleans())
    # Names that keep every budget: 63 for a Deployment, 46 for a multi-node LeaderWorkerSet.
    room = 63 - len(service) - 1
    names = draw(st.lists(dns_label(1, min(room, 20)), min_size=len(types) + 1, max_size=len(types) + 1, unique=True))
    roles = []
    for name, ctype in zip(names, types, strict=False):
        multinode_ok = len(service) + 1 + len(name) <= 46
        roles.append(draw(serving_role(name, ctype, max_multinode_name=multinode_ok)))
    if disaggregated:
        # vLLM NIXL: decode TP >= prefill TP. Prefillers keep the default TP (1) here.
        for role in roles:
            if role["componentType"] == "prefiller":
                _drop_tensor_parallel(role)
    for role in roles:
        _fit_gpus_to_parallelism(role)
    if with_router:
        position = draw(st.integers(0, len(roles)))
        roles.insert(position, draw(router_role(names[-1], disaggregated)))
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": service},
        "spec": {"roles": roles},
    }
    if draw(st.booleans()):
        doc["metadata"]["namespace"] = draw(dns_label(1, 20))
    if draw(st.booleans()):
        scheduler = draw(st.sampled_from([None, "volcano", "default-scheduler"]))
        gang = draw(
            st.sampled_from([None, "Auto", "Disabled"] + (["Enabled"] if scheduler != "default-scheduler" else []))
        )
        strategy: dict[str, Any] = {}
        if scheduler:
            strategy["schedulerName"] = scheduler
        if gang:
            strategy["gangScheduling"] = gang
        if draw(st.booleans()):
            strategy["queue"] = "research"
        if draw(st.booleans()):
            strategy["priorityClassName"] = "high"
        doc["spec"]["schedulingStrategy"] = strategy
    return doc


# --- breaking a valid document ---------------------------------------------------------------------
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
BAD_NAMES = st.one_of(
    st.sampled_from(["", "A", "1abc", "a_b", "a.b", "abc-", "-a", "ab c", "x" * 64, "x" * 120]),
    st.text(max_size=70),
    dns_label(1, 20).map(lambda name: name + "\n"),
)
BROKEN_ROUTES = st.fixed_dictionaries(
    {},
    optional={
        "parentRefs": st.one_of(JUNK, st.lists(JUNK, max_size=2)),
        "hostnames": st.one_of(JUNK, st.lists(JUNK, max_size=2)),
        "rules": st.one_of(
            JUNK,
            st.lists(
                st.one_of(
                    JUNK,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "matches": st.one_of(JUNK, st.lists(st.one_of(JUNK, st.just({"path": "x"})), max_size=2)),
                            "timeouts": st.one_of(JUNK, st.fixed_dictionaries({"request": JUNK})),
                        },
                    ),
                ),
                max_size=2,
            ),
        ),
    },
)
BROKEN_EPP_CONFIGS = st.sampled_from(
    [
        "- a list",
        "kind: Other",
        "plugins: [{}]",
        "kind: EndpointPickerConfig\nplugins: 5\n",
        "kind: EndpointPickerConfig\nplugins: {a: 1}\n",
        "kind: EndpointPickerConfig\nschedulingProfiles: 5\n",
        "kind: EndpointPickerConfig\nschedulingProfiles: [x, {plugins: 3}]\n",
    ]
)


def _role_index(draw: st.DrawFn, doc: dict[str, Any]) -> int:
    return draw(st.integers(0, len(doc["spec"]["roles"]) - 1))


@st.composite
def broken_services(draw: st.DrawFn) -> Any:
    doc = draw(valid_services())
    for _ in range(draw(st.integers(1, 3))):
        roles = doc["spec"]["roles"]
        role = roles[_role_index(draw, doc)] if roles else {}
        mutation = draw(st.integers(0, 19))
        if mutation == 0:
            role["name"] = draw(BAD_NAMES)
        elif mutation == 1:
            role["componentType"] = draw(st.one_of(st.sampled_from(["worker", "prefiller", "decoder", "router"]), JUNK))
        elif mutation == 2:
            role[draw(st.sampled_from(["replicas", "roleReplicas", "podReplicas"]))] = draw(
                st.one_of(st.integers(-5, 20000), st.integers(10**9, 10**30), JUNK)
            )
        elif mutation == 3:
            role["multinode"] = draw(
                st.one_of(JUNK, st.fixed_dictionaries({"nodeCount": st.one_of(st.integers(-2, 70), JUNK)}))
            )
        elif mutation == 4:
            role["template"] = draw(
                st.one_of(
                    JUNK,
                    st.just({}),
                    st.just({"spec": {}}),
                    st.just({"spec": {"containers": []}}),
                    st.fixed_dictionaries({"spec": st.fixed_dictionaries({"containers": st.lists(JUNK, max_size=2)})}),
                )
            )
        elif mutation == 5:
            field = draw(
                st.sampled_from(["strategy", "httproute", "endpointPickerConfig", "endpointPicker", "gateway"])
            )
            role[field] = draw(
                st.one_of(
                    st.sampled_from(["prefix-cache", "pd-disaggregation", "round-robin"]),
                    httproute(),
                    BROKEN_ROUTES,
                    st.sampled_from(EPP_CONFIGS),
                    BROKEN_EPP_CONFIGS,
                    st.fixed_dictionaries({"plugins": plugins(at_least_one_enabled=False)}),
                    st.just({"className": "istio"}),
                    JUNK,
                )
            )
        elif mutation == 6:
            role[draw(st.sampled_from(["engine", "multinode", "podReplicas"]))] = draw(
                st.one_of(st.sampled_from(["vllm", "sglang", "tgi"]), st.just({"nodeCount": 2}), st.integers(1, 3))
            )
        elif mutation == 7:
            role["rollout"] = draw(
                st.one_of(
                    JUNK,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "maxSurge": st.one_of(st.integers(-3, 5), st.sampled_from(["0", "0%", "150%", "x"])),
                            "maxUnavailable": st.one_of(st.integers(-3, 5), st.sampled_from(["0", "0%", "101%"])),
                            "partition": st.one_of(st.integers(-1, 3), JUNK),
                        },
                    ),
                )
            )
        elif mutation == 8:
            container = draw(containers())[0]
            key = draw(st.sampled_from(["name", "image", "command", "args", "ports"]))
            container[key] = draw(
                st.one_of(JUNK, st.lists(st.fixed_dictionaries({"containerPort": JUNK}), min_size=1, max_size=2))
            )
            role["template"] = {"spec": {"containers": [container, copy.deepcopy(container)]}}
        elif mutation == 9:
            role.setdefault("template", {}).setdefault("metadata", {})["labels"] = {
                draw(st.sampled_from(["fusioninfer.io/role-name", "app.kubernetes.io/managed-by", "ok"])): "x"
            }
        elif mutation == 10:
            doc["metadata"]["name"] = draw(st.one_of(BAD_NAMES, JUNK, dns_label(50, 70)))
        elif mutation == 11:
            roles.append(copy.deepcopy(role))
        elif mutation == 12 and roles:
            roles.pop(_role_index(draw, doc))
        elif mutation == 13:
            target = draw(st.sampled_from(["doc", "spec", "role", "metadata"]))
            where = {"doc": doc, "spec": doc["spec"], "role": role, "metadata": doc["metadata"]}[target]
            where[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
        elif mutation == 14:
            doc["spec"]["schedulingStrategy"] = draw(
                st.one_of(
                    JUNK,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "schedulerName": st.one_of(st.sampled_from(["volcano", "default-scheduler", ""]), JUNK),
                            "gangScheduling": st.one_of(st.sampled_from(["Auto", "Enabled", "Disabled", "on"]), JUNK),
                        },
                    ),
                )
            )
        elif mutation == 15:
            doc[draw(st.sampled_from(["apiVersion", "kind"]))] = draw(st.one_of(JUNK, st.just("v1")))
        elif mutation == 16:
            doc["spec"]["roles"] = draw(st.one_of(JUNK, st.just([]), st.lists(JUNK, max_size=2)))
            break
        elif mutation == 17:
            del doc[draw(st.sampled_from(["metadata", "spec"]))]
            break
        elif mutation == 18:
            return draw(JUNK)
        else:
            role["componentType"] = "router"  # a serving role turned router keeps its serving fields
    return doc


def any_services() -> st.SearchStrategy[Any]:
    return st.one_of(valid_services(), broken_services())


# --- invariants ------------------------------------------------------------------------------------
def assert_well_formed(isvc: InferenceService, objects: list[dict[str, Any]]) -> None:
    assert [sort_key(o) for o in objects] == sorted(sort_key(o) for o in objects)
    keys = [(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), keys
    for obj in objects:
        meta = obj["metadata"]
        name = meta["name"]
        assert len(name) <= 63, (obj["kind"], name)
        assert DNS1123_SUBDOMAIN.fullmatch(name), (obj["kind"], name)
        assert meta["namespace"] == isvc.namespace
        labels = meta["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "fusioninfer"
        assert labels["fusioninfer.io/service"] == isvc.name
        for value in labels.values():
            assert len(value) <= 63, value
            assert LABEL_VALUE.fullmatch(value), value
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
            assert obj["spec"]["replicas"] >= 0


def unchanged(doc: Any, original: Any) -> bool:
    """`doc == original`, but a NaN is still the NaN it was (`nan == nan` is False: a document
    that is just a NaN would otherwise count as changed)."""
    if isinstance(doc, dict) and isinstance(original, dict):
        return doc.keys() == original.keys() and all(unchanged(doc[k], original[k]) for k in doc)
    if isinstance(doc, list) and isinstance(original, list):
        return len(doc) == len(original) and all(map(unchanged, doc, original))
    return bool(doc == original) or (doc != doc and original != original)


def check_document(doc: Any) -> InferenceService | None:
    original = copy.deepcopy(doc)
    rejected: InvalidSpec | None = None
    try:
        isvc = parse(doc)
    except InvalidSpec as exc:
        rejected = exc
    assert unchanged(doc, original), "parse() must not change its input"
    if rejected is not None:
        assert rejected.errors
        for err in rejected.errors:
            assert isinstance(err.message, str)
            assert err.path or len(err.message) >= 10, err
            assert err.message.strip(), err
            assert "Traceback" not in err.message
        return None
    for capabilities in (Capabilities(), Capabilities(lws=False, volcano=False, gateway_api=False)):
        first = build(isvc, BuildOptions(capabilities=capabilities)).objects
        assert_well_formed(isvc, first)
        assert build(isvc, BuildOptions(capabilities=capabilities)).objects == first
    return isvc


@SETTINGS
@given(valid_services())
def test_every_spec_that_follows_the_rules_is_accepted_and_renders(doc: dict[str, Any]) -> None:
    isvc = check_document(doc)
    assert isvc is not None, "the validator rejected a spec that follows every rule"
    names = {o["metadata"]["name"] for o in build(isvc).objects}
    for role in isvc.serving_roles:
        assert f"{isvc.name}-{role.name}" in names
    # Deterministic across parses too, and the owner reference reaches every child.
    owned = build(isvc, BuildOptions(owner_uid="uid-1")).objects
    assert build(parse(copy.deepcopy(doc)), BuildOptions(owner_uid="uid-1")).objects == owned
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == "uid-1" for o in owned)


@SETTINGS
@given(any_services())
def test_any_spec_renders_or_is_rejected_with_a_message(doc: Any) -> None:
    event("accepted" if check_document(doc) is not None else "rejected")
