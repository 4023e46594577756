"""No import cycle anywhere in `fusioninfer`, not even one dodged by a function-level import.

A cycle means two modules cannot be understood (or tested, or moved) apart, and the usual
dodge, importing inside a function, hides it from every reader and tool. This test reads every
module's source with `ast` (module-level and nested imports alike), resolves relative imports
and `from package import module` to the module they name, and fails on any strongly connected
component of more than one module, or a module that imports itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "fusioninfer"


def module_files(src: Path, root: str = ROOT) -> dict[str, Path]:
    """Every module of the package under `src`, by dotted name (a package is its `__init__`)."""
    out: dict[str, Path] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(module: str, path: Path, level: int, target: str | None) -> str:
    """The absolute name of `from <level dots><target> import ...` written in `module`."""
    if level == 0:
        return target or ""
    package = module.split(".") if _is_package(path) else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, target] if target else base)


def imported_modules(module: str, path: Path, known: Mapping[str, Path], root: str = ROOT) -> set[str]:
    """The package-internal modules `module` imports, at any depth of its syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: Iterator[str]
        if isinstance(node, ast.Import):
            names = (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node.level, node.module)
            # `from pkg import mod` imports the module `pkg.mod`; `from mod import name` imports `mod`.
            names = iter([f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names])
        else:
            continue
        for name in names:
            if name != root and not name.startswith(root + "."):
                continue
            # `import a.b.c` (or a name inside a module) depends on the deepest module that exists.
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known:
                found.add(name)
    return found


def import_graph(src: Path, root: str = ROOT) -> dict[str, set[str]]:
    known = module_files(src, root)
    return {module: imported_modules(module, path, known, root) for module, path in known.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, and self-imports (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def _describe(graph: Mapping[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"  {a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "\n".join([" <-> ".join(component), *edges])


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(SRC)
    assert len(graph) > 50, "the walk found too few modules: is SRC right?"
    found = cycles(graph)
    assert not found, "import cycles in fusioninfer:\n" + "\n\n".join(_describe(graph, c) for c in found)


# The builders' layers, lowest first: a module imports only from layers below its own, and
# within a layer only the shared facts may use each other. A new module must be placed here.
BUILDER_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"context", "kinds", "resources", "engine", "epp_config", "refs", "workload"})
    | frozenset({"health", "podparts", "ports", "pd_sglang"}),
    frozenset({"pd", "gang", "multinode", "engine_flags", "probes"}),
    frozenset({"podtemplate"}),
    frozenset({"deployment", "leaderworkerset", "podgroup", "autoscaler"})
    | frozenset({"epp", "inferencepool", "gateway", "httproute"}),
    frozenset({"router"}),
    frozenset({""}),  # the package itself: `build()`
)
SIDEWAYS_ALLOWED = BUILDER_LAYERS[0]


def _builder_layer(module: str) -> int:
    name = module.removeprefix("fusioninfer.builders").removeprefix(".")
    for index, layer in enumerate(BUILDER_LAYERS):
        if name in layer:
            return index
    raise AssertionError(f"{module} is in no layer of BUILDER_LAYERS: place it there")


def test_the_builders_import_only_downwards() -> None:
    graph = import_graph(SRC)
    wrong: list[str] = []
    for module, imports in sorted(graph.items()):
        if not (module == "fusioninfer.builders" or module.startswith("fusioninfer.builders.")):
            continue
        mine = _builder_layer(module)
        for other in sorted(imports):
            if not other.startswith("fusioninfer.builders."):
                continue
            theirs = _builder_layer(other)
            sideways = theirs == mine and BUILDER_LAYERS[mine] is not SIDEWAYS_ALLOWED
            if theirs > mine or sideways:
                wrong.append(f"{module} (layer {mine}) -> {other} (layer {theirs})")
    assert wrong == [], "builders importing sideways or upwards:\n" + "\n".join(wrong)


# The core packages and what each may import besides itself: `kube` is pure and shared by every
# layer, so it imports nothing of ours; the runtime knows nothing of InferenceService but the
# hash annotation's key (`api.labels`); the controller is the only one that sees everything.
PACKAGE_DEPENDENCIES: dict[str, frozenset[str]] = {
    "kube": frozenset(),
    "api": frozenset({"kube"}),
    "builders": frozenset({"kube", "api"}),
    "runtime": frozenset({"kube", "api.labels"}),
    "controller": frozenset({"kube", "api", "builders", "runtime"}),
}


def _allowed(module: str, other: str) -> bool:
    mine = module.split(".")[1]
    rest = other.removeprefix(ROOT + ".")
    return rest.split(".")[0] == mine or any(rest == a or rest.startswith(a + ".") for a in PACKAGE_DEPENDENCIES[mine])


def test_the_core_packages_import_only_their_lower_layers() -> None:
    graph = import_graph(SRC)
    wrong = [
        f"{module} -> {other}"
        for module, imports in sorted(graph.items())
        if module.count(".") >= 1 and module.split(".")[1] in PACKAGE_DEPENDENCIES
        for other in sorted(imports)
        if not _allowed(module, other)
    ]
    assert wrong == [], "imports across the core layers:\n" + "\n".join(wrong)


def test_the_kube_package_is_found_and_stays_pure() -> None:
    graph = import_graph(SRC)
    kube = {m: deps for m, deps in graph.items() if m.startswith(ROOT + ".kube")}
    assert {"fusioninfer.kube.conditions", "fusioninfer.kube.owners", "fusioninfer.kube.quantity"} <= set(kube)
    assert {"fusioninfer.kube.retry", "fusioninfer.kube.types", "fusioninfer.kube.yaml"} <= set(kube)
    assert all(dep.startswith(ROOT + ".kube") for deps in kube.values() for dep in deps)


# --- the checker itself: it must see every kind of import it claims to see ---------------------
def _write(tmp: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp


@pytest.mark.parametrize(
    "b_source",
    [
        "import fusioninfer.a\n",
        "from fusioninfer import a\n",
        "from fusioninfer.a import thing\n",
        "from . import a\n",
        "from .a import thing\n",
        "def f() -> None:\n    from fusioninfer import a\n",
        "class C:\n    def m(self) -> None:\n        import fusioninfer.a as alias\n",
    ],
)
def test_a_cycle_is_found_however_it_is_written(tmp_path: Path, b_source: str) -> None:
    src = _write(
        tmp_path,
        {
            "fusioninfer/__init__.py": "",
            "fusioninfer/a.py": "from fusioninfer.b import thing\n",
            "fusioninfer/b.py": b_source + "thing = 1\n",
        },
    )
    assert cycles(import_graph(src)) == [["fusioninfer.a", "fusioninfer.b"]]


def test_relative_imports_resolve_from_packages_and_parents(tmp_path: Path) -> None:
    src = _write(
        tmp_path,
        {
            "fusioninfer/__init__.py": "",
            "fusioninfer/top.py": "from fusioninfer.sub.leaf import x\n",
            "fusioninfer/sub/__init__.py": "from . import leaf\n",
            "fusioninfer/sub/leaf.py": "from .. import top\nx = 1\n",
        },
    )
    graph = import_graph(src)
    assert graph["fusioninfer.sub"] == {"fusioninfer.sub.leaf"}
    assert graph["fusioninfer.sub.leaf"] == {"fusioninfer.top"}
    assert cycles(graph) == [["fusioninfer.sub.leaf", "fusioninfer.top"]]


def test_a_self_import_and_a_long_cycle_are_cycles() -> None:
    assert cycles({"p.a": {"p.a"}}) == [["p.a"]]
    assert cycles({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}) == [["p.a", "p.b", "p.c"]]
    assert cycles({"p.a": {"p.b"}, "p.b": set(), "p.c": {"p.a", "p.b"}}) == []
