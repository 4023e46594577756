"""Every label and annotation key the operator writes or reads: one home, named constants.

These keys are API: the controller finds, prunes and reports on its children by them, users
select on them (`kubectl get pods -l fusioninfer.io/service=...`), and validation refuses
user templates that try to set them. Spelling one of them twice is how a selector and the
label it selects on drift apart, so every module imports them from here.

Third-party keys we only write because another project reads them (Volcano's group
annotations, llm-d's role label, Istio's service type) stay with the builder that writes
them: they are that project's API, not ours.

Pure: no imports, so any layer (api, builders, runtime, controller, localcluster) may use it.
"""

from __future__ import annotations

# --- our prefix ---------------------------------------------------------------------------------
RESERVED_PREFIX = "fusioninfer.io/"
"""Keys under our domain are the operator's: a user template may not set any of them."""

# --- the recommended Kubernetes labels we own on every child --------------------------------------
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
"""Marks every child as ours; the controller watches and prunes only objects carrying it."""

MANAGED_BY = "fusioninfer"
"""The value of `LABEL_MANAGED_BY`."""

LABEL_INSTANCE = "app.kubernetes.io/instance"
"""The InferenceService name, under the recommended key that generic tools (dashboards) group by."""

LABEL_COMPONENT = "app.kubernetes.io/component"
"""A role's component type (worker, prefiller, decoder, router) under the recommended key."""

# --- our own labels -----------------------------------------------------------------------------
LABEL_SERVICE = "fusioninfer.io/service"
"""The InferenceService a child belongs to: how the controller lists a service's children and
pods, and half of every workload's immutable selector."""

LABEL_ROLE_NAME = "fusioninfer.io/role-name"
"""The role a workload or pod belongs to: the other half of the selector, and how status is
computed per role."""

LABEL_COMPONENT_TYPE = "fusioninfer.io/component-type"
"""The role's component type under our domain, which users cannot forge (unlike `LABEL_COMPONENT`)."""

LABEL_SERVING = "fusioninfer.io/serving"
"""On pods that serve the OpenAI API (single-node pods, multi-node leaders): what the
InferencePool selects, so multi-node workers and the picker are never endpoints."""

SERVING_VALUE = "true"
"""The value of `LABEL_SERVING`."""

LABEL_SIMULATED_NODE = "fusioninfer.io/simulated-node"
"""On the local cluster's KWOK nodes: names the pool a simulated node belongs to."""

# --- our annotations ----------------------------------------------------------------------------
ANNOTATION_EPP_CONFIG_HASH = "fusioninfer.io/epp-config-hash"
"""On the picker's pod template: a hash of its ConfigMap, so a config change rolls the picker
(it reads the file only at start-up)."""

ANNOTATION_APPLIED_HASH = "fusioninfer.io/applied-hash"
"""On every applied child: the hash of what we last applied, so an unchanged desired object is
not re-applied (no idle writes)."""

# --- derived --------------------------------------------------------------------------------------
RESERVED_LABELS = frozenset({LABEL_MANAGED_BY, LABEL_INSTANCE, LABEL_COMPONENT})
"""Keys outside `RESERVED_PREFIX` that we set on pods and a user template may not set either: ours would
overwrite them silently."""


def is_reserved(key: str) -> bool:
    """A label key a user's pod template may not set (validation refuses it)."""
    return key.startswith(RESERVED_PREFIX) or key in RESERVED_LABELS
