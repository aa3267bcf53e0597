"""The shape of the code: the import graph has no cycles, the core never imports a front-end,
front-ends never import a storage backend, and no module grows past a few hundred lines.

Imports are read from the source (``ast``), wherever they are written: at the top, inside a
function, or under ``TYPE_CHECKING``; each one is a dependency a reader of the module must know.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retrieval", "bot")
# The storage backends: every package under retrieval/storage/ (each implements the Backend
# protocol of retrieval/storage/base.py and is opened by retrieval/storage/factory.py only).
BACKENDS_DIR = ROOT / "retrieval" / "storage"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Return every module of the project by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """Yield the project modules that module ``name`` (at ``path``) imports."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports a.b when that is a module, else the name b of module a.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` of a module we do not know: its nearest known package.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: sorted(set(_imported(name, path))) for name, path in MODULES.items()}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, []):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_backend(module: str) -> bool:
    path = MODULES[module]
    return path.is_relative_to(BACKENDS_DIR) and path.parent != BACKENDS_DIR


def test_the_graph_sees_the_project() -> None:
    """The checks below only mean something if the graph holds the project's imports."""
    assert "retrieval.newsindex" in MODULES and "bot.cli" in MODULES
    assert any(_is_backend(m) for m in MODULES)
    assert sum(len(v) for v in GRAPH.values()) > 100


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_core_never_imports_a_front_end() -> None:
    wrong = [
        (m, t) for m, targets in GRAPH.items() if m.startswith("retrieval") for t in targets if t.startswith("bot")
    ]
    assert wrong == []


def test_front_ends_never_import_a_storage_backend() -> None:
    """Front-ends reach storage through the core's service layer, never a backend package."""
    wrong = [(m, t) for m, targets in GRAPH.items() if m.startswith("bot") for t in targets if _is_backend(t)]
    assert wrong == []


def test_only_the_storage_factory_reads_storage_backend() -> None:
    """A new backend is one package and one line in the factory: nothing else decides by its name."""
    readers = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "backend"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "storage"
            ):
                readers.append(name)
    assert sorted(set(readers)) == ["retrieval.storage.factory"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_module_is_longer_than_a_few_hundred_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
