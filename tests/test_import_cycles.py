"""No import cycle among the project's own modules (``connectors`` and ``job``).

Every import statement counts, wherever it stands: at the top, inside a function, under ``if
TYPE_CHECKING:`` (a cycle that only the type checker sees is still a design knot, and moving an
import into a function hides a cycle rather than breaking it). An import of ``a.b.c`` also imports
its packages ``a.b`` and ``a``: their ``__init__`` runs first, and whatever it imports with it.

One exception, the only one, and a fact of Python rather than a choice: the packages around the
importing module itself. When ``a.b.c`` runs, ``a.b`` and ``a`` have already been imported (Python
imports a module's packages before the module), so ``from a.b.d import x`` inside ``a.b.c`` does not
run ``a/b/__init__.py``: that implied edge ``a.b.c -> a.b`` is left out. Without it, a package whose
``__init__`` re-exports its modules (``connectors.simulator``) would be a cycle with each of them.
An explicit import of such a package (``from a.b import x``, ``x`` not a module) does count: it
reads a name the package's ``__init__`` may not have reached yet.

Resolution is static (``ast``): relative imports against the module's package, ``from pkg import
name`` as ``pkg.name`` when that is a module of the project, else as ``pkg``. ``importlib``
imports by a computed name are not seen.

grimp (PyPI) builds a like graph but lists no cycles: its one cycle tool names the imports to cut so
that a package's children, each taken whole, import each other acyclically; nor does it count a
package's ``__init__`` as imported with each of its modules.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("connectors", "job")


class Import:
    """One edge: ``importer`` imports ``imported`` at ``where`` (``path:line``)."""

    __slots__ = ("imported", "importer", "where")

    def __init__(self, importer: str, imported: str, where: str) -> None:
        self.importer, self.imported, self.where = importer, imported, where


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted name -> source file of every module and package under ``packages``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> list[str]:
    """The project modules one import statement names (before adding their packages)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        anchor = package.split(".")
        if node.level > 1:
            anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
    ]


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, list[Import]]:
    """importer -> its imports of other project modules (implied packages included)."""
    files = module_files(root, packages)
    known = set(files)
    graph: dict[str, list[Import]] = defaultdict(list)
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        # Packages already imported when this module runs: importing them again runs nothing.
        around = set(_parents(module)) | ({module} if is_package else set())
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            for target in _targets(node, module, is_package, known):
                implied = [p for p in _parents(target) if p not in around]
                for imported in [*implied, target]:
                    if imported in known and imported != module:
                        graph[module].append(Import(module, imported, where))
    return graph


def strongly_connected(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, ()):
            if edge.imported not in index:
                visit(edge.imported)
                low[node] = min(low[node], low[edge.imported])
            elif edge.imported in on_stack:
                low[node] = min(low[node], index[edge.imported])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def one_cycle(graph: dict[str, list[Import]], component: list[str]) -> list[Import]:
    """A shortest cycle through the component's first module, as the imports that make it."""
    members, start = set(component), component[0]
    came_by: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph.get(node, ()):
                if edge.imported not in members or edge.imported in came_by:
                    continue
                came_by[edge.imported] = edge
                if edge.imported == start:
                    path = [edge]
                    while path[0].importer != start:
                        path.insert(0, came_by[path[0].importer])
                    return path
                following.append(edge.imported)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")


def describe(graph: dict[str, list[Import]], components: list[list[str]]) -> str:
    lines = []
    for component in components:
        lines.append(f"cycle among {', '.join(component)}:")
        lines += [
            f"  {e.importer} -> {e.imported}  ({e.where})" for e in one_cycle(graph, component)
        ]
    return "\n".join(lines)


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph(ROOT, PACKAGES)
    assert len(module_files(ROOT, PACKAGES)) > 30  # the walk found the project
    components = strongly_connected(graph)
    assert not components, "import cycles:\n" + describe(graph, components)


# -- the checker itself, on a small package made for it ------------------------------------------


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_sees_cycles_through_every_kind_of_import(tmp_path):
    _package(
        tmp_path,
        {
            "p/__init__.py": "",
            "p/a.py": "import typing\nif typing.TYPE_CHECKING:\n    from p.b import B\n",
            "p/b.py": "def f():\n    from . import c\n",  # a submodule named in from-import
            "p/c.py": "from .sub.d import D\n",  # relative, into a subpackage
            "p/sub/__init__.py": "import p.a\n",  # runs before p.sub.d: closes the circle
            "p/sub/d.py": "D = 1\n",
        },
    )
    graph = import_graph(tmp_path, ("p",))
    components = strongly_connected(graph)
    assert components == [["p.a", "p.b", "p.c", "p.sub"]]
    message = describe(graph, components)
    assert "p.a -> p.b  (p/a.py:3)" in message
    assert "p.c -> p.sub  (p/c.py:1)" in message


def test_the_checker_leaves_out_only_the_importers_own_packages(tmp_path):
    _package(
        tmp_path,
        {
            # the re-exporting __init__: its modules importing each other is no cycle
            "p/__init__.py": "from p.a import A\nfrom p.b import B\n",
            "p/a.py": "A = 1\n",
            "p/b.py": "from p.a import A\nB = A\n",
        },
    )
    assert strongly_connected(import_graph(tmp_path, ("p",))) == []
    # ...but reading a name from the package that is running them is one
    (tmp_path / "p/b.py").write_text("from p import A\nB = A\n", encoding="utf-8")
    assert strongly_connected(import_graph(tmp_path, ("p",))) == [["p", "p.b"]]
