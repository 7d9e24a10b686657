"""Issue 19's layout rules, read from the source: no import cycle among the package's modules
(function-level imports included, ``if TYPE_CHECKING:`` blocks aside), and no module over 300
lines without a reason at its top, none over 350."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "reranker_seqcls"
LONG = 300
TOO_LONG = 350


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return hidden


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its body."""
    tree = ast.parse(path.read_text("utf-8"))
    hidden = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in modules else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_no_import_cycle_among_the_modules() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert sum(map(len, graph.values())) > 100  # the parse sees the imports at all
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_function_level_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
        "def f():\n    import y\n"
    )
    hidden = _type_checking_nodes(tree)
    seen = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import) and id(node) not in hidden
        for alias in node.names
    }
    assert seen == {"y"}


def test_module_sizes() -> None:
    too_long, unexplained = [], []
    for name, path in _modules().items():
        text = path.read_text("utf-8")
        lines = text.count("\n")
        if lines > TOO_LONG:
            too_long.append((name, lines))
        elif lines > LONG:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "over 300 lines" not in docstring.lower():
                unexplained.append((name, lines))
    assert too_long == [], f"modules over {TOO_LONG} lines"
    assert unexplained == [], f"modules over {LONG} lines without 'over 300 lines: why' on top"


def test_method_names_are_written_only_in_the_method_table() -> None:
    """A scoring method is defined once (``recipes/methods.py``); other modules look it up
    instead of comparing its name (docstrings, which show examples, aside)."""
    from reranker_seqcls.recipes.methods import METHODS

    found: dict[str, list[int]] = {}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text("utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and any(m in node.value for m in METHODS)
            ):
                found.setdefault(name, []).append(node.lineno)
    assert found.pop("reranker_seqcls.recipes.methods")  # the scan sees the table's names
    assert found == {}, "method names written outside recipes/methods.py"
