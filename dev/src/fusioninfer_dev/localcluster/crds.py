"""Install CustomResourceDefinitions into the local control plane and wait until they serve.

`BUNDLED_CRD_DIR` holds the upstream CRDs of the third-party kinds FusionInfer creates
(LeaderWorkerSet, Volcano PodGroup/Queue, Gateway API, Inference Extension), byte for byte as
their projects publish them, one directory per project with its licence (see its README.md).

Reading and applying CRDs is `fusioninfer install`'s code (`fusioninfer.install.crds`); this module
adds the bundled directory and this harness's field manager.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fusioninfer.install.crds import CRDNotEstablished, apply_crds, crd_files, is_established, load_crds

__all__ = [
    "BUNDLED_CRD_DIR",
    "CRDNotEstablished",
    "crd_files",
    "crd_names",
    "install_crds",
    "is_established",
    "load_crds",
    "served_versions",
]

BUNDLED_CRD_DIR = Path(__file__).with_name("crds")
FIELD_MANAGER = "fusioninfer-localcluster"


def install_crds(
    client: Any,
    *sources: Path | str,
    field_manager: str = FIELD_MANAGER,
    establish_timeout: float = 60.0,
) -> list[str]:
    """Server-side apply every CRD in `sources` with a sync lightkube Client and wait until all
    are Established: `fusioninfer install`'s own apply-and-wait, under this harness's field
    manager. Returns the CRD names."""
    return apply_crds(client, load_crds(*sources), timeout=establish_timeout, field_manager=field_manager)


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
