"""`fusioninfer.kube` is the one home of `Obj`, and stays pure (importable from any layer)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "fusioninfer"
KUBE = SRC / "kube"
ALIASES = {"Obj", "ObjList"}


def _assigned_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_obj_is_defined_once() -> None:
    defined = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if _assigned_names(ast.parse(path.read_text(encoding="utf-8"))) & ALIASES
    ]
    assert defined == ["kube/types.py"]


def _ours_outside_kube(module: str) -> bool:
    return (module == "fusioninfer" or module.startswith("fusioninfer.")) and not module.startswith("fusioninfer.kube")


def test_the_kube_package_imports_nothing_of_ours() -> None:
    for path in sorted(KUBE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name}: reaches above fusioninfer.kube"
                assert not _ours_outside_kube(node.module or ""), f"{path.name}: {node.module}"
            elif isinstance(node, ast.Import):
                assert not any(_ours_outside_kube(a.name) for a in node.names), path.name
