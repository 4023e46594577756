"""What every builder needs: the validated service, the build options, and our labels (whose
keys live in `api.labels`).

Builders are pure: a `BuildContext` in, manifests (plain dicts) out, no I/O. The same code
backs `fusioninfer render` (offline) and the controller.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fusioninfer.api.labels import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_TYPE,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_ROLE_NAME,
    LABEL_SERVICE,
    MANAGED_BY,
)
from fusioninfer.api.v1alpha1 import API_VERSION, KIND, InferenceService, Role
from fusioninfer.kube.owners import owner_reference
from fusioninfer.kube.types import Obj

# A child manifest: a Kubernetes object, the one `Obj` type under the name builders use.
Manifest = Obj


OPTIONAL_APIS = ("lws", "volcano", "gateway_api", "inference_pool", "inference_objective", "keda")


@dataclass(frozen=True)
class Capabilities:
    """What the target cluster offers. Offline rendering assumes a recent cluster with every API."""

    lws: bool = True
    volcano: bool = True
    gateway_api: bool = True
    inference_pool: bool = True
    inference_objective: bool = True
    keda: bool = True
    # (major, minor) of the apiserver; None means "recent". Older servers lack gRPC probes
    # (< 1.24) and native sidecars (< 1.29); builders fall back to what they support.
    server_version: tuple[int, int] | None = None

    def missing(self) -> list[str]:
        return [name for name in OPTIONAL_APIS if not getattr(self, name)]

    @classmethod
    def of(cls, present: Mapping[str, bool], server_version: tuple[int, int] | None = None) -> Capabilities:
        """From {api name: installed}; names not given count as installed."""
        unknown = set(present) - set(OPTIONAL_APIS)
        if unknown:
            raise ValueError(f"unknown optional APIs: {sorted(unknown)}")
        flags = {name: bool(present.get(name, True)) for name in OPTIONAL_APIS}
        return cls(
            lws=flags["lws"],
            volcano=flags["volcano"],
            gateway_api=flags["gateway_api"],
            inference_pool=flags["inference_pool"],
            inference_objective=flags["inference_objective"],
            keda=flags["keda"],
            server_version=server_version,
        )


@dataclass(frozen=True)
class BuildOptions:
    """Knobs that do not come from the InferenceService itself."""

    capabilities: Capabilities = field(default_factory=Capabilities)
    # Filled in by the controller once the owner exists; offline renders leave it empty.
    owner_uid: str | None = None
    # Operator-wide image overrides (env EPP_IMAGE / PD_EPP_IMAGE / ROUTING_SIDECAR_IMAGE).
    epp_image: str | None = None
    pd_epp_image: str | None = None
    routing_sidecar_image: str | None = None
    # The live replica count of this service's workloads (by name), for roles that follow another
    # role's autoscaled count (`autoscaling.ratioTo`); read from the cluster, never stored.
    live_replicas: Mapping[str, int] = field(default_factory=dict)


# Notice reasons whose pods would not start as rendered (the engine exits on them).
ENGINE_WONT_START = frozenset({"DeprecatedKVConnector"})


@dataclass(frozen=True)
class Notice:
    """Something a builder could not do, for a status condition and an Event.

    `condition` is the condition type it belongs to (e.g. `PrerequisitesMet`), `reason` a
    CamelCase reason, `message` what a person should do about it.
    """

    condition: str
    reason: str
    message: str

    @property
    def stops_the_engine(self) -> bool:
        """The rendered pods would not start (e.g. a KV connector the engine removed): an error
        under `fusioninfer validate --strict`, and named in the `Valid` condition."""
        return self.reason in ENGINE_WONT_START


@dataclass
class BuildContext:
    isvc: InferenceService
    options: BuildOptions = field(default_factory=BuildOptions)
    notices: list[Notice] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.isvc.name

    @property
    def namespace(self) -> str:
        return self.isvc.namespace

    @property
    def capabilities(self) -> Capabilities:
        return self.options.capabilities

    def notice(self, condition: str, reason: str, message: str) -> None:
        """Record a notice once: a builder may build the same pod template more than once."""
        notice = Notice(condition, reason, message)
        if notice not in self.notices:
            self.notices.append(notice)

    # --- labels -------------------------------------------------------------------------------
    def service_labels(self) -> dict[str, str]:
        """Labels every child carries; the controller finds (and prunes) its children by them."""
        return {
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_INSTANCE: self.name,
            LABEL_SERVICE: self.name,
        }

    def role_labels(self, role: Role) -> dict[str, str]:
        return {
            **self.service_labels(),
            LABEL_COMPONENT: role.component_type.value,
            LABEL_ROLE_NAME: role.name,
            LABEL_COMPONENT_TYPE: role.component_type.value,
        }

    def role_selector(self, role: Role) -> dict[str, str]:
        """The immutable selector of a role's workload: small, and never changes for a role."""
        return {LABEL_SERVICE: self.name, LABEL_ROLE_NAME: role.name}

    # --- metadata -----------------------------------------------------------------------------
    def owner_references(self) -> list[dict[str, Any]]:
        if not self.options.owner_uid:
            return []
        return [owner_reference(API_VERSION, KIND, self.name, self.options.owner_uid)]

    def metadata(self, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> Manifest:
        meta: Manifest = {"name": name, "namespace": self.namespace, "labels": dict(sorted(labels.items()))}
        if annotations:
            meta["annotations"] = dict(sorted(annotations.items()))
        owners = self.owner_references()
        if owners:
            meta["ownerReferences"] = owners
        return meta


def deep_copy(obj: Any) -> Any:
    return copy.deepcopy(obj)
