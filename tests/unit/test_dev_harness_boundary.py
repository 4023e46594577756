"""The development harness is not the product: `fusioninfer` never imports `fusioninfer_dev`
(the local cluster, the demo), the harness has no import cycle of its own, and its commands
reach `fusioninfer` only through the `fusioninfer.commands` entry points it declares."""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import typer
from tests.unit.test_import_graph import cycles, import_graph

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_SRC = ROOT / "src"
HARNESS_SRC = ROOT / "dev" / "src"
HARNESS = "fusioninfer_dev"


def harness_imports(path: Path) -> list[str]:
    """Every `fusioninfer_dev...` module a file imports, at any depth of its syntax tree."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.split(".")[0] == HARNESS)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == HARNESS:
            found.append(node.module or "")
    return found


def test_the_operator_never_imports_the_harness() -> None:
    files = sorted((OPERATOR_SRC / "fusioninfer").rglob("*.py"))
    assert len(files) > 50, "the walk found too few modules: is OPERATOR_SRC right?"
    offenders = {str(f.relative_to(ROOT)): names for f in files if (names := harness_imports(f))}
    assert offenders == {}


def test_the_boundary_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    sources = [
        "import fusioninfer_dev\n",
        "import fusioninfer_dev.localcluster.cluster as c\n",
        "from fusioninfer_dev.localcluster import crds\n",
        "def f() -> None:\n    from fusioninfer_dev import demo\n",
    ]
    for index, text in enumerate(sources):
        path = tmp_path / f"m{index}.py"
        path.write_text(text)
        assert harness_imports(path), text
    clean = tmp_path / "clean.py"
    clean.write_text("import fusioninfer.cli\nfrom fusioninfer import install\n")
    assert harness_imports(clean) == []


def test_the_harness_has_no_import_cycle() -> None:
    graph = import_graph(HARNESS_SRC, HARNESS)
    assert len(graph) > 20, "the walk found too few modules: is HARNESS_SRC right?"
    assert cycles(graph) == []


def test_the_harness_is_its_own_distribution_and_the_operator_excludes_it() -> None:
    operator = tomllib.loads((ROOT / "pyproject.toml").read_text())
    harness = tomllib.loads((ROOT / "dev" / "pyproject.toml").read_text())
    assert operator["tool"]["setuptools"]["packages"]["find"]["include"] == ["fusioninfer*"]
    assert harness["project"]["name"] == "fusioninfer-dev"
    assert "fusioninfer" in harness["project"]["dependencies"]
    assert not any("envoy" in dep for dep in operator["project"]["dependencies"])
    declared = harness["project"]["entry-points"]["fusioninfer.commands"]
    assert declared == {"cluster": "fusioninfer_dev.commands:cluster_app", "demo": "fusioninfer_dev.commands:demo"}


def test_the_installed_harness_mounts_its_commands_into_fusioninfer() -> None:
    from fusioninfer.cli import PLUGIN_GROUP, app

    installed = {entry.name: entry.value for entry in entry_points(group=PLUGIN_GROUP)}
    assert installed == {"cluster": "fusioninfer_dev.commands:cluster_app", "demo": "fusioninfer_dev.commands:demo"}
    groups = {group.name for group in app.registered_groups}
    commands = {command.name for command in app.registered_commands}
    assert "cluster" in groups
    assert "demo" in commands
    assert isinstance(entry_points(group=PLUGIN_GROUP)["cluster"].load(), typer.Typer)
