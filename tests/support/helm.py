"""Helm, for the tests of `charts/fusioninfer`: `helm lint` and `helm template`, never a cluster.

The binary is the one `make tools` (`fusioninfer cluster build --tools`) builds from the Go module
`helm.sh/helm/v4` into the cache, like every other component: no download. Not built yet? Under
CI (`CI` set: `make test` builds it first) that is a failure; elsewhere the chart's tests are
skipped with the command that builds it, as the image test treats a missing Podman.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fusioninfer_dev.localcluster.build import HELM, HELM_VERSION, component_dir, missing_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "fusioninfer"
RELEASE = "fusioninfer"
NAMESPACE = "fusioninfer-system"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def helm_binary() -> Path:
    """The cached Helm, or a failure (CI) / a skip (elsewhere) naming how to build it."""
    directory = component_dir(HELM)
    if not missing_binaries(HELM, directory):
        return directory / "helm"
    message = (
        f"helm {HELM_VERSION} is not built: `make tools` (fusioninfer cluster build --tools) builds it from "
        f"the Go module helm.sh/helm/v4 into {directory} (once; about 6 minutes cold on 2 cores)"
    )
    if in_ci():
        pytest.fail(message)  # `make test` builds it first: missing in CI is a failure, never a skip
    pytest.skip(message)


def helm(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """Run Helm with its cache, config and data directories under `home` (nothing of the user's)."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(helm_binary()), *map(str, args)], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def template(home: Path, *values: str, include_crds: bool = False) -> list[dict[str, Any]]:
    """`helm template fusioninfer charts/fusioninfer -n fusioninfer-system [--set VALUE]...`: the objects."""
    sets = [arg for value in values for arg in ("--set", value)]
    crds = ["--include-crds"] if include_crds else []
    done = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *crds, *sets, home=home)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
