"""Install CustomResourceDefinitions into the local control plane and wait until they serve.

`BUNDLED_CRD_DIR` holds the upstream CRDs of the third-party kinds FusionInfer creates
(LeaderWorkerSet, Volcano PodGroup/Queue, Gateway API, Inference Extension), byte for byte as
their projects publish them, one directory per project with its licence (see its README.md).

CRDs are server-side applied from plain dicts (never round-tripped through client models, which
would drop fields they do not know). Server-side apply (not client-side `kubectl apply`) matters
for the 1.2 MB upstream LWS CRD: a last-applied annotation of that size is rejected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

BUNDLED_CRD_DIR = Path(__file__).with_name("crds")
FIELD_MANAGER = "fusioninfer-localcluster"
CRD_KIND = "CustomResourceDefinition"
# libyaml's loader parses the 1.2 MB LWS CRD in a fraction of the pure-Python loader's 1.5 s.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CRDNotEstablished(TimeoutError):
    """A CRD was accepted but did not become Established in time."""


def crd_files(*sources: Path | str) -> list[Path]:
    """YAML files named by `sources` (files, or directories: every `*.yaml`/`*.yml` below them,
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
            for doc in yaml.load_all(fh, Loader=_SafeLoader):
                if isinstance(doc, dict) and doc.get("kind") == CRD_KIND:
                    crds.append(doc)
    return crds


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


def _apply_args(field_manager: str) -> dict[str, Any]:
    from lightkube.types import PatchType

    return {"patch_type": PatchType.APPLY, "field_manager": field_manager, "force": True}


def install_crds(
    client: Any,
    *sources: Path | str,
    field_manager: str = FIELD_MANAGER,
    establish_timeout: float = 60.0,
) -> list[str]:
    """Server-side apply every CRD in `sources` with a sync lightkube Client, then wait until all
    are Established. Idempotent. Returns the CRD names."""
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

    crds = load_crds(*sources)
    for crd in crds:
        client.patch(CustomResourceDefinition, crd["metadata"]["name"], crd, **_apply_args(field_manager))
    names = [crd["metadata"]["name"] for crd in crds]
    deadline = time.monotonic() + establish_timeout
    for name in names:
        while not is_established(client.get(CustomResourceDefinition, name)):
            if time.monotonic() > deadline:
                raise CRDNotEstablished(f"CRD {name} not Established after {establish_timeout}s")
            time.sleep(0.05)
    return names


async def ainstall_crds(
    client: Any,
    *sources: Path | str,
    field_manager: str = FIELD_MANAGER,
    establish_timeout: float = 60.0,
) -> list[str]:
    """`install_crds` for a lightkube AsyncClient."""
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

    crds = load_crds(*sources)
    for crd in crds:
        await client.patch(CustomResourceDefinition, crd["metadata"]["name"], crd, **_apply_args(field_manager))
    names = [crd["metadata"]["name"] for crd in crds]
    deadline = time.monotonic() + establish_timeout
    for name in names:
        while not is_established(await client.get(CustomResourceDefinition, name)):
            if time.monotonic() > deadline:
                raise CRDNotEstablished(f"CRD {name} not Established after {establish_timeout}s")
            await asyncio.sleep(0.05)
    return names


def crd_names(*sources: Path | str) -> list[str]:
    """Names of the CRDs in `sources` (e.g. to delete them again)."""
    return [crd["metadata"]["name"] for crd in load_crds(*sources)]


def served_versions(crds: Iterable[dict[str, Any]]) -> list[tuple[str, str, str, str, bool]]:
    """(group, version, kind, plural, namespaced) for every served version, e.g. to build lightkube
    generic resources with `create_namespaced_resource` / `create_global_resource`."""
    out: list[tuple[str, str, str, str, bool]] = []
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                out.append(
                    (
                        spec["group"],
                        version["name"],
                        spec["names"]["kind"],
                        spec["names"]["plural"],
                        spec["scope"] == "Namespaced",
                    )
                )
    return out
