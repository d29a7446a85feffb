"""The import rule: no module imports the package root, and no import cycle.

The graph is read from the source (every ``import`` statement, at the top of a
module or inside a function), so a loop hidden in a lazy import counts too.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "assd"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The ``assd`` modules that ``name`` imports (package ``__init__`` counts as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m == "assd" or m.startswith("assd.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_loop_and_passes_a_tree():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_relative_imports_resolve_to_modules():
    # methods/ssd.py imports the rule's dampening module; cli/app.py imports the command list
    assert "assd.rule.dampening" in GRAPH["assd.methods.ssd"]
    assert "assd.cli.commands" in GRAPH["assd.cli.app"]


def test_no_import_cycle():
    # the package root re-exports everything by design; every other module is in the graph
    graph = {k: v for k, v in GRAPH.items() if k != "assd"}
    assert _cycle(graph) is None


def test_no_module_imports_the_package_root():
    offenders = sorted(name for name, deps in GRAPH.items() if "assd" in deps)
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    if name == "assd.__main__":
        pytest.skip("__main__ runs the CLI on import")
    importlib.import_module(name)


def test_the_architecture_doc_names_every_subpackage_and_only_files_that_exist():
    text = (ROOT.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert {p for p in packages if f"{p}/" not in text} == set()
    named = set(re.findall(r"`([a-z_]+/(?:[a-z_]+/)?[a-z_]+\.py)", text))
    missing = {n for n in named if not (ROOT / n).is_file() and not (ROOT.parents[1] / n).is_file()
               and not (ROOT.parent / n).is_file()}  # relative to src/assd, the repo or src/
    assert named and missing == set()
