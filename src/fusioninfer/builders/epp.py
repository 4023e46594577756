"""The endpoint picker (EPP) of a router role: identity, least-privilege RBAC, config, Deployment, Service.

Objects, all named `{service}-epp` except the ConfigMap `{service}-epp-config`:
ServiceAccount, Role, RoleBinding, ConfigMap (`config.yaml`), Deployment, Service.

What differs from the Go original, and why:
* the Role grants exactly what the v1.2.1 picker reads (pods, both InferencePool groups,
  InferenceObjectives); leases/events only when HA leader election is on (replicas > 1);
* `--metrics-endpoint-auth=false`, because the authenticated metrics endpoint needs
  cluster-scoped tokenreview/subjectaccessreview RBAC and we create no cluster-scoped children;
* a sha256 of the config in a pod-template annotation, so a config change rolls the picker
  (it reads its config only at start-up);
* engine-aware metric flags (vLLM 0.11 hides the metric v1.2.1 reads by default, SGLang names
  its metrics differently and has no LoRA metric);
* the image follows the config: plugins only the llm-d scheduler registers select its image.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fusioninfer.api import naming
from fusioninfer.api.labels import ANNOTATION_EPP_CONFIG_HASH
from fusioninfer.api.router_spec import RoutingStrategy
from fusioninfer.api.v1alpha1 import Engine, Role
from fusioninfer.builders import engine as engines
from fusioninfer.builders import pd, refs
from fusioninfer.builders.context import BuildContext, Manifest, deep_copy
from fusioninfer.builders.epp_config import (
    CONFIG_KEY,
    GIE_PLUGIN_TYPES,
    LORA_AFFINITY_SCORER,
    PickerConfig,
    unweighted_scorers_after_picker,
)

GIE_EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.2.1"
# The llm-d router's picker for P/D (and llm-d-only scorers). The P/D config follows its tag:
# v0.6+ shape by default (see epp_config); an explicit v0.4/v0.5 image gets the older shape.
LLMD_EPP_IMAGE = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1"

GRPC_PORT = refs.PICKER_GRPC_PORT
GRPC_HEALTH_PORT = 9003
METRICS_PORT = 9090
HEALTH_SERVICE = "inference-extension"
CONFIG_DIR = "/config"
CONFIG_VOLUME = "epp-config"
CONTAINER_NAME = "epp"
# The chart's value: long enough to drain in-flight ext-proc streams.
TERMINATION_GRACE_SECONDS = 130
DEFAULT_RESOURCES: dict[str, Any] = {"requests": {"cpu": "500m", "memory": "512Mi"}}
GRPC_PROBE_MIN_VERSION = (1, 24)

# What the picker needs per engine, beyond GIE v1.2.1's vLLM defaults.
ENGINE_FLAGS: dict[Engine, list[str]] = {
    # v1.2.1 reads vllm:gpu_cache_usage_perc, which vLLM 0.11 hides: KV usage would read 0.
    Engine.VLLM: ["--kv-cache-usage-percentage-metric=vllm:kv_cache_usage_perc"],
    Engine.SGLANG: [
        "--total-queued-requests-metric=sglang:num_queue_reqs",
        "--kv-cache-usage-percentage-metric=sglang:token_usage",
        # Empty disables LoRA metrics: SGLang has none.
        "--lora-info-metric=",
    ],
}

SPEC_WARNINGS = "SpecWarnings"


# --- decisions ----------------------------------------------------------------------------------
def picker_replicas(role: Role) -> int:
    ep = role.endpoint_picker
    return ep.replicas if ep is not None and ep.replicas is not None else 1


def high_availability(role: Role) -> bool:
    """More than one replica: leader election, so one picker (with the prefix index) is active."""
    return picker_replicas(role) > 1


def llmd_image(ctx: BuildContext, role: Role) -> str:
    """The llm-d picker image this router would run if its config needs llm-d's plugins: the
    user's `endpointPicker.image`, the operator's `--pd-epp-image`, or the default."""
    explicit = role.endpoint_picker.image if role.endpoint_picker is not None else None
    return explicit or ctx.options.pd_epp_image or LLMD_EPP_IMAGE


def default_image(ctx: BuildContext, config: PickerConfig) -> str:
    if config.needs_llmd_image:
        return ctx.options.pd_epp_image or LLMD_EPP_IMAGE
    return ctx.options.epp_image or GIE_EPP_IMAGE


def picker_image(ctx: BuildContext, role: Role, config: PickerConfig) -> str:
    """`endpointPicker.image` wins; else the GIE or llm-d image, whichever loads the config."""
    explicit = role.endpoint_picker.image if role.endpoint_picker is not None else None
    if explicit:
        if config.needs_llmd_image and "gateway-api-inference-extension" in explicit:
            llmd_only = sorted({t for t in config.plugin_types if t not in GIE_PLUGIN_TYPES})
            ctx.notice(
                SPEC_WARNINGS,
                "PickerImageMismatch",
                f"router {role.name}: the config uses {', '.join(llmd_only)}, which the GIE picker image "
                f"{explicit} does not register (it would fail at start-up); use {LLMD_EPP_IMAGE} or leave "
                "endpointPicker.image unset",
            )
        return explicit
    return default_image(ctx, config)


def serving_engine(ctx: BuildContext) -> Engine:
    """The engine whose metrics the picker scrapes (the first serving role's; mixing is reported)."""
    roles = ctx.isvc.serving_roles
    if not roles:
        return Engine.VLLM
    found = [engines.serving_container(r).engine for r in roles]
    if len(set(found)) > 1:
        ctx.notice(
            SPEC_WARNINGS,
            "MixedEngines",
            f"serving roles run different engines ({', '.join(sorted(set(found)))}); the picker reads "
            f"{found[0]} metric names, so the other roles' load and KV metrics read as 0",
        )
    return found[0]


def picker_args(ctx: BuildContext, role: Role, engine: Engine) -> list[str]:
    """Only flags whose default is wrong for us (ports and pool group keep the defaults we expose)."""
    args = [
        f"--pool-name={naming.pool_name(ctx.name)}",
        f"--pool-namespace={ctx.namespace}",
        f"--config-file={CONFIG_DIR}/{CONFIG_KEY}",
        "--metrics-endpoint-auth=false",
        *ENGINE_FLAGS[engine],
    ]
    if high_availability(role):
        args.append("--ha-enable-leader-election=true")
    # Last: Go's flag package keeps the last value, so extra args override ours.
    extra = role.endpoint_picker.extra_args if role.endpoint_picker is not None else None
    args += list(extra or [])
    return args


def config_hash(config: PickerConfig) -> str:
    return hashlib.sha256(config.text.encode()).hexdigest()


# --- objects ------------------------------------------------------------------------------------
def _meta(ctx: BuildContext, role: Role, name: str) -> Manifest:
    return ctx.metadata(name, ctx.role_labels(role))


def service_account(ctx: BuildContext, role: Role) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ctx, role, naming.epp_name(ctx.name))}


def rbac_rules(role: Role) -> list[dict[str, Any]]:
    """Exactly what the v1.2.1 picker reads (controller_manager.go); nothing cluster-scoped."""
    read = ("get", "list", "watch")
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": list(read)},
        {"apiGroups": ["inference.networking.k8s.io"], "resources": ["inferencepools"], "verbs": list(read)},
        {
            "apiGroups": ["inference.networking.x-k8s.io"],
            "resources": ["inferenceobjectives", "inferencepools"],
            "verbs": list(read),
        },
    ]
    if high_availability(role):
        rules += [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ]
    return rules


def rbac_role(ctx: BuildContext, role: Role) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ctx, role, naming.epp_name(ctx.name)),
        "rules": rbac_rules(role),
    }


def role_binding(ctx: BuildContext, role: Role) -> Manifest:
    name = naming.epp_name(ctx.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ctx, role, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}],
    }


def config_map(ctx: BuildContext, role: Role, config: PickerConfig) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ctx, role, naming.epp_config_name(ctx.name)),
        "data": {CONFIG_KEY: config.text},
    }


def _probes(ctx: BuildContext, role: Role) -> tuple[dict[str, Any], dict[str, Any]]:
    """gRPC health probes on 9003; a TCP check where the apiserver predates gRPC probes.

    With leader election the picker answers `liveness` / `readiness` separately, so only the
    leader is ready and the Service sends traffic to it alone.
    """
    version = pd.server_version(ctx)
    if version is not None and version < GRPC_PROBE_MIN_VERSION:
        check: dict[str, Any] = {"tcpSocket": {"port": GRPC_HEALTH_PORT}}
        return ({**check, "initialDelaySeconds": 5, "periodSeconds": 10}, {**check, "periodSeconds": 2})
    live_service = "liveness" if high_availability(role) else HEALTH_SERVICE
    ready_service = "readiness" if high_availability(role) else HEALTH_SERVICE
    liveness = {
        "grpc": {"port": GRPC_HEALTH_PORT, "service": live_service},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    readiness = {"grpc": {"port": GRPC_HEALTH_PORT, "service": ready_service}, "periodSeconds": 2}
    return liveness, readiness


def _container(ctx: BuildContext, role: Role, config: PickerConfig, engine: Engine) -> dict[str, Any]:
    ep = role.endpoint_picker
    liveness, readiness = _probes(ctx, role)
    return {
        "name": CONTAINER_NAME,
        "image": picker_image(ctx, role, config),
        "args": picker_args(ctx, role, engine),
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": GRPC_HEALTH_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        ],
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "resources": deep_copy(ep.resources) if ep is not None and ep.resources else deep_copy(DEFAULT_RESOURCES),
        "volumeMounts": [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}],
    }


def pod_template(ctx: BuildContext, role: Role, config: PickerConfig, engine: Engine) -> Manifest:
    """The user's router template (scheduling fields, labels, annotations) plus the picker."""
    user_meta: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if role.template is not None:
        if role.template.metadata is not None:
            user_meta = role.template.metadata.model_dump(exclude_none=True)
        spec = deep_copy(role.template.spec or {})
    labels = {**(user_meta.get("labels") or {}), **ctx.role_labels(role)}
    annotations = {**(user_meta.get("annotations") or {}), ANNOTATION_EPP_CONFIG_HASH: config_hash(config)}
    spec["serviceAccountName"] = naming.epp_name(ctx.name)
    spec.setdefault("terminationGracePeriodSeconds", TERMINATION_GRACE_SECONDS)
    spec["containers"] = [_container(ctx, role, config, engine)]
    volumes = [v for v in spec.get("volumes") or [] if not (isinstance(v, dict) and v.get("name") == CONFIG_VOLUME)]
    volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": naming.epp_config_name(ctx.name)}})
    spec["volumes"] = volumes
    return {
        "metadata": {"labels": dict(sorted(labels.items())), "annotations": dict(sorted(annotations.items()))},
        "spec": spec,
    }


def deployment(ctx: BuildContext, role: Role, config: PickerConfig, engine: Engine) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ctx, role, naming.epp_name(ctx.name)),
        "spec": {
            "replicas": picker_replicas(role),
            "selector": {"matchLabels": ctx.role_selector(role)},
            # The picker keeps per-pod state (prefix index); two at once would split it.
            "strategy": {"type": "Recreate"},
            "template": pod_template(ctx, role, config, engine),
        },
    }


def service(ctx: BuildContext, role: Role) -> Manifest:
    """ClusterIP Service the gateway calls (ext-proc over HTTP/2); every port says TCP for SSA."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ctx, role, naming.epp_name(ctx.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": ctx.role_selector(role),
            "ports": [
                {
                    "name": "grpc-ext-proc",
                    "port": GRPC_PORT,
                    "targetPort": GRPC_PORT,
                    "protocol": "TCP",
                    "appProtocol": "http2",
                },
                {"name": "grpc-health", "port": GRPC_HEALTH_PORT, "targetPort": GRPC_HEALTH_PORT, "protocol": "TCP"},
                {"name": "http-metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT, "protocol": "TCP"},
            ],
        },
    }


def lint(ctx: BuildContext, role: Role, config: PickerConfig, engine: Engine) -> None:
    """Problems the picker would only show at run time: report them now."""
    if config.raw:
        crashing = unweighted_scorers_after_picker(config.document)
        if crashing:
            ctx.notice(
                SPEC_WARNINGS,
                "UnweightedScorer",
                f"router {role.name}: endpointPickerConfig lists scorers without a weight after the picker "
                f"({', '.join(crashing)}); picker v1.2.1 crashes on that. Give every scorer a weight",
            )
    uses_lora = LORA_AFFINITY_SCORER in config.plugin_types
    if uses_lora and engine is Engine.SGLANG:
        ctx.notice(
            SPEC_WARNINGS,
            "LoRAMetricUnavailable",
            f"router {role.name}: the lora-affinity scorer needs a LoRA metric, which SGLang does not expose; "
            "it scores every pod the same",
        )
    elif uses_lora:
        missing = [
            r.name
            for r in ctx.isvc.serving_roles
            if pd.flag_value(engines.serving_container(r).container, "--enable-lora") is None
        ]
        if missing:
            ctx.notice(
                SPEC_WARNINGS,
                "LoRAMetricUnavailable",
                f"router {role.name}: vLLM emits vllm:lora_requests_info only with --enable-lora, missing on "
                f"role(s) {', '.join(missing)}; lora-affinity then scores every pod the same",
            )
    if (
        ctx.isvc.is_disaggregated
        and role.effective_strategy is not RoutingStrategy.PD_DISAGGREGATION
        and not config.raw
    ):
        ctx.notice(
            SPEC_WARNINGS,
            "NotDisaggregatedRouting",
            f"router {role.name}: the service has prefill and decode roles but strategy "
            f"{role.effective_strategy}: each request goes whole to one pod; use pd-disaggregation",
        )


def build(ctx: BuildContext, role: Role, config: PickerConfig) -> list[Manifest]:
    engine = serving_engine(ctx)
    lint(ctx, role, config, engine)
    return [
        service_account(ctx, role),
        rbac_role(ctx, role),
        role_binding(ctx, role),
        config_map(ctx, role, config),
        deployment(ctx, role, config, engine),
        service(ctx, role),
    ]
