"""Helm is built like every other component: from its Go module (`helm.sh/helm/v4`, no replaces,
so a plain `go install`), into the cache, by `fusioninfer cluster build --tools` (`make tools`,
which `make test` depends on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusioninfer_dev import commands
from fusioninfer_dev.localcluster import build


def test_helm_is_go_installed_from_its_module_with_its_version_flags() -> None:
    assert build.HELM.wrapper is None
    argv = build.go_build_argv(build.HELM, Path("/out"))
    assert argv[:2] == ["go", "install"]
    assert argv[-1] == f"helm.sh/helm/v4/cmd/helm@{build.HELM_VERSION}"
    flags = next(a for a in argv if a.startswith("-ldflags="))
    assert f"-X helm.sh/helm/v4/internal/version.version={build.HELM_VERSION}" in flags
    assert build.go_build_env(build.HELM, Path("/out"), base={})["GOBIN"] == "/out"
    assert build.component_dir(build.HELM, Path("/cache")) == Path(f"/cache/helm-{build.HELM_VERSION}")


def test_helm_is_a_tool_not_part_of_the_cluster() -> None:
    assert build.HELM in build.TOOL_COMPONENTS
    assert build.HELM not in (*build.CLUSTER_COMPONENTS, *build.PICKER_COMPONENTS)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["build"], [c.name for c in (*build.CLUSTER_COMPONENTS, *build.PICKER_COMPONENTS)]),
        (["build", "--tools"], ["helm"]),
    ],
)
def test_cluster_build_builds_the_cluster_or_the_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    built: list[str] = []
    monkeypatch.setenv("FUSIONINFER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(commands, "ensure_component", lambda component, echo=None: built.append(component.name))
    result = CliRunner().invoke(commands.cluster_app, args)
    assert result.exit_code == 0, result.output
    assert built == expected
