"""The shape of the code: its longest modules and functions, and the import graph's cycles.

    python -m benchmarks.code_shape [--limit N] [--json]

Reads the sources of ``schemas/``, ``pipeline/`` and ``trainer/`` (nothing is imported).
A module's length is its line count; a function's is its body's, from its first
statement (the docstring included) to its last line, so that a long signature (a CLI
command's options) does not count. The import graph has an edge wherever a module
imports another project module, at the top or inside a function (a deferred import
still closes a cycle at run time; it only hides it from the reader), but not under
``if TYPE_CHECKING:``, which never runs. ``from P import name`` is an edge to the module
``P.name`` when there is one, else to ``P`` itself (a package's ``__init__``). Importing
``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``: edges to those packages too,
unless the importing module is inside them (they ran before it). A cycle is a strongly
connected component of that graph, shown with one shortest loop through it.

The figures are reported, not enforced, except what ``tests/test_code_shape.py`` checks:
``schemas`` imports nothing from ``pipeline`` or ``trainer``, and no cycle goes through it.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import sys
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "pipeline", "trainer")
#: The goals of the folder reorganisation (issue 26), reported as "over" counts.
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Function:
    module: str
    name: str  # qualified within the module: Class.method, outer.inner
    line: int
    body_lines: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    deferred: bool  # inside a function: runs when the function is first called
    implicit: bool  # a package whose __init__ the import runs (it names a module inside)


def module_name(path: Path, root: Path) -> str:
    """``pipeline/datasets/__init__.py`` -> ``pipeline.datasets``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``, by dotted name."""
    files: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                files[module_name(path, root)] = path
    return files


def functions(module: str, tree: ast.Module) -> list[Function]:
    """Every function and method of ``tree``, nested ones included, with its body length."""
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                start = child.body[0].lineno
                end = child.end_lineno or start
                found.append(Function(module, name, child.lineno, end - start + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _ancestors(name: str) -> set[str]:
    """``a.b.c`` -> ``{"a", "a.b"}``."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(module: str, path: Path, tree: ast.Module, known: set[str]) -> list[Edge]:
    """The edges from ``module`` to the project modules it imports (see the module doc)."""
    edges: list[Edge] = []

    def target(name: str) -> str | None:
        while name and name not in known:  # ``import a.b.c`` of a name inside a.b
            name = name.rpartition(".")[0]
        return name or None

    own = _ancestors(_package_of(module, path)) | {_package_of(module, path)}

    def add(name: str | None, node: ast.stmt, deferred: bool) -> None:
        if name is None:
            return
        # Importing a.b.c first runs a's and a.b's __init__: edges too, unless they are
        # packages of this module (already imported before it runs).
        for package in sorted(_ancestors(name) - own):
            if package in known:
                edge = Edge(module, package, node.lineno, deferred, implicit=True)
                if edge not in edges:
                    edges.append(edge)
        edge = Edge(module, name, node.lineno, deferred, implicit=False)
        if name != module and edge not in edges:
            edges.append(edge)

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:  # the else branch does run
                    visit(other, deferred)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(target(alias.name), child, deferred)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = _package_of(module, path).split(".")
                    package = package[: len(package) - child.level + 1]
                    base = ".".join([*package, *([base] if base else [])])
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    add(full if full in known else target(base), child, deferred)
            inside = deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inside)

    visit(tree, False)
    return edges


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        # Iterative depth-first search: (node, its successors left to visit).
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return sorted(found)


def shortest_loop(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest import path from ``start`` back to itself inside one component."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in within:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return [start]


def measure(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """Everything the report shows, as plain data (what ``--json`` prints)."""
    files = source_files(root, packages)
    known = set(files)
    module_lines: dict[str, int] = {}
    funcs: list[Function] = []
    edges: list[Edge] = []
    for name, path in files.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        module_lines[name] = len(text.splitlines())
        funcs += functions(name, tree)
        edges += imports(name, path, tree, known)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for edge in edges:
        graph[edge.source].add(edge.target)
    cycles = []
    for component in strongly_connected(graph):
        members = set(component)
        loop = shortest_loop(graph, component[0], members)
        via = [
            asdict(e)
            for a, b in itertools.pairwise(loop)
            for e in [next(e for e in edges if (e.source, e.target) == (a, b))]
        ]
        cycles.append({"modules": component, "loop": loop, "edges": via})
    modules = sorted(module_lines.items(), key=lambda kv: (-kv[1], kv[0]))
    funcs.sort(key=lambda f: (-f.body_lines, f.module, f.line))
    return {
        "packages": list(packages),
        "thresholds": {"module_lines": MAX_MODULE_LINES, "function_body_lines": MAX_FUNCTION_LINES},
        "modules": [
            {"module": m, "lines": n, "path": str(files[m].relative_to(root))} for m, n in modules
        ],
        "functions": [asdict(f) for f in funcs],
        "modules_over": sum(n > MAX_MODULE_LINES for _, n in modules),
        "functions_over": sum(f.body_lines > MAX_FUNCTION_LINES for f in funcs),
        "edges": [asdict(e) for e in edges],
        "cycles": cycles,
    }


def render(shape: dict[str, Any], limit: int) -> str:
    """The human report: the longest ``limit`` modules and functions, then the cycles."""
    lines = [
        f"{len(shape['modules'])} modules in {', '.join(shape['packages'])}; "
        f"{shape['modules_over']} over {MAX_MODULE_LINES} lines, "
        f"{shape['functions_over']} functions with a body over {MAX_FUNCTION_LINES} lines, "
        f"{len(shape['cycles'])} import cycles",
        "",
        f"longest modules (lines; over {MAX_MODULE_LINES} marked *):",
    ]
    for row in shape["modules"][:limit]:
        mark = "*" if row["lines"] > MAX_MODULE_LINES else " "
        lines.append(f"  {mark}{row['lines']:5d}  {row['path']}")
    lines += ["", f"longest functions (body lines; over {MAX_FUNCTION_LINES} marked *):"]
    for row in shape["functions"][:limit]:
        mark = "*" if row["body_lines"] > MAX_FUNCTION_LINES else " "
        lines.append(f"  {mark}{row['body_lines']:5d}  {row['module']}:{row['line']} {row['name']}")
    lines += ["", "import cycles (deferred: an import inside a function):"]
    if not shape["cycles"]:
        lines.append("  none")
    for cycle in shape["cycles"]:
        lines.append(f"  {len(cycle['modules'])} modules: {', '.join(cycle['modules'])}")
        for edge in cycle["edges"]:
            how = " (deferred)" if edge["deferred"] else ""
            how += " (its package's __init__)" if edge["implicit"] else ""
            lines.append(f"    {edge['source']}:{edge['line']} -> {edge['target']}{how}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.code_shape", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--limit", type=int, default=15, help="rows per list (default 15)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = parser.parse_args(argv)
    shape = measure()
    if args.json:
        json.dump(shape, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(render(shape, args.limit))


if __name__ == "__main__":
    main()
