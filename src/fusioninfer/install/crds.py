"""Install and uninstall FusionInfer's CRD (and, for local clusters, third-party CRDs).

The CRD carries CEL rules (`x-kubernetes-validations`), which apiservers before 1.25 do not
know: server-side apply there fails with "field not declared in schema". On such a server the
rules are stripped before applying, with a warning: the operator enforces the same rules itself
(the `Valid` condition), so nothing is lost but the early rejection at `kubectl apply` time.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType

from fusioninfer.api.crd import crd as generate_crd
from fusioninfer.kube.yaml import FAST_SAFE_LOADER, load_all
from fusioninfer.runtime.version import server_version

FIELD_MANAGER = "fusioninfer-install"
CEL_MIN_MINOR = 25


class CRDNotEstablished(TimeoutError):
    """A CRD was accepted but did not become Established in time."""


def strip_cel(obj: Any) -> Any:
    """A copy of `obj` without any `x-kubernetes-validations`."""
    if isinstance(obj, dict):
        return {k: strip_cel(v) for k, v in obj.items() if k != "x-kubernetes-validations"}
    if isinstance(obj, list):
        return [strip_cel(v) for v in obj]
    return copy.deepcopy(obj)


def adapt_crd(crd: dict[str, Any], minor: int) -> tuple[dict[str, Any], list[str]]:
    """The CRD as this server can store it, and warnings about what was left out."""
    if minor >= CEL_MIN_MINOR:
        return crd, []
    stripped = strip_cel(crd)
    if stripped != crd:
        return stripped, [
            f"Kubernetes 1.{minor} does not support CEL validation rules: removed them from "
            f"{crd['metadata']['name']}; the operator still enforces them (condition Valid=False)"
        ]
    return crd, []


def is_established(crd: Any) -> bool:
    """True when the CRD's `Established` and `NamesAccepted` conditions are True."""
    status = crd.status if not isinstance(crd, dict) else crd.get("status")
    if status is None:
        return False
    conditions = status.get("conditions") if isinstance(status, dict) else status.conditions
    ok = {
        (c["type"] if isinstance(c, dict) else c.type)
        for c in conditions or []
        if (c["status"] if isinstance(c, dict) else c.status) == "True"
    }
    return {"Established", "NamesAccepted"} <= ok


def crd_files(*sources: Path | str) -> list[Path]:
    """YAML files named by `sources`: files, or directories (every `*.yaml`/`*.yml` below them,
    sorted)."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no CRD file or directory at {path}")
    return files


def load_crds(*sources: Path | str) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in `sources` (other kinds are skipped)."""
    crds: list[dict[str, Any]] = []
    for file in crd_files(*sources):
        with file.open() as fh:
            # libyaml's loader: the 1.2 MB LWS CRD in a fraction of the pure-Python loader's 1.5 s.
            for doc in load_all(fh, loader=FAST_SAFE_LOADER):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
    return crds


def apply_crds(
    client: Client,
    crds: Iterable[dict[str, Any]],
    timeout: float = 60.0,
    field_manager: str = FIELD_MANAGER,
) -> list[str]:
    """Server-side apply CRDs (adapted to the server) and wait until each is Established.

    Applied from plain dicts, never round-tripped through client models (which would drop fields
    they do not know); server-side, because a client-side last-applied annotation of the 1.2 MB
    upstream LWS CRD is rejected. Idempotent. Returns the CRD names."""
    version = server_version(client)
    minor = version[1] if version else CEL_MIN_MINOR
    names: list[str] = []
    warnings: list[str] = []
    for crd in crds:
        body, notes = adapt_crd(crd, minor)
        warnings.extend(notes)
        name = body["metadata"]["name"]
        client.patch(
            CustomResourceDefinition, name, body, patch_type=PatchType.APPLY, field_manager=field_manager, force=True
        )
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while not is_established(client.get(CustomResourceDefinition, name)):
            if time.monotonic() > deadline:
                raise CRDNotEstablished(f"CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.05)
    for warning in warnings:
        print(f"warning: {warning}")
    return names


def install_crds(kubeconfig: Path | str | None, extra_sources: Sequence[Path | str] = ()) -> list[str]:
    """Install our CRD plus every CRD under `extra_sources` (files or directories)."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    client = Client(config=config, field_manager=FIELD_MANAGER)
    try:
        return apply_crds(client, [generate_crd(), *load_crds(*extra_sources)] if extra_sources else [generate_crd()])
    finally:
        client.close()


def uninstall_crds(kubeconfig: Path | str | None) -> bool:
    """Delete our CRD (and with it every InferenceService). False if it was not installed."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    client = Client(config=config, field_manager=FIELD_MANAGER)
    try:
        client.delete(CustomResourceDefinition, generate_crd()["metadata"]["name"])
        return True
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    finally:
        client.close()
