"""Figures on the code's shape, for before/after comparisons of a refactoring.

Prints the count of ``dict[str, Any]`` in ``shared/`` and ``services/``, the largest module and
class, the functions over 60 lines, and the import cycles among ``shared``'s modules (imports
inside functions and under ``TYPE_CHECKING`` count: a cycle hidden in a function still runs).

    .venv/bin/python scripts/code_shape.py [--list]
"""

from __future__ import annotations

import argparse
import ast
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = ("shared", "services", "simulators", "devstack", "bench")
LONG_FUNCTION = 60

log = logging.getLogger("code_shape")


@dataclass(frozen=True)
class Span:
    where: str
    lines: int


def sources(*trees: str) -> Iterator[Path]:
    for tree in trees:
        yield from sorted(p for p in (ROOT / tree).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def spans(path: Path) -> tuple[list[Span], list[Span]]:
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(ROOT)
    functions: list[Span] = []
    classes: list[Span] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            span = Span(f"{rel}:{node.lineno} {node.name}", size)
            (classes if isinstance(node, ast.ClassDef) else functions).append(span)
    return functions, classes


def imports_of(path: Path, package: str) -> set[str]:
    """Every module of ``package`` that ``path`` imports, wherever the import statement is."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != package:
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def cycles(package: str) -> list[list[str]]:
    paths = list(sources(package))
    known = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for p in paths:
        name = module_name(p)
        graph[name] = {m for m in imports_of(p, package) if m in known and m != name}
    # Tarjan's strongly connected components; a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            # A package and its own submodules import each other by construction (__init__
            # re-exports); only a component with two unrelated modules is a real cycle.
            roots = {m for m in component if not any(m.startswith(o + ".") for o in component)}
            if len(roots) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every long function")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    untyped = sum(p.read_text().count("dict[str, Any]") for p in sources("shared", "services"))
    modules = [(len(p.read_text().splitlines()), p.relative_to(ROOT)) for p in sources(*TREES)]
    functions: list[Span] = []
    classes: list[Span] = []
    for p in sources(*TREES):
        f, c = spans(p)
        functions += f
        classes += c
    long_functions = sorted(
        (s for s in functions if s.lines > LONG_FUNCTION), key=lambda s: -s.lines
    )
    biggest_module = max(modules)
    biggest_class = max(classes, key=lambda s: s.lines)
    layers = sorted(p.name for p in (ROOT / "shared").iterdir() if (p / "__init__.py").exists())
    loose = sorted(p.name for p in (ROOT / "shared").glob("*.py") if p.name != "__init__.py")

    log.info("dict[str, Any] in shared/ and services/: %d", untyped)
    log.info("largest module: %s (%d lines)", biggest_module[1], biggest_module[0])
    log.info("largest class: %s (%d lines)", biggest_class.where, biggest_class.lines)
    for tree in ("shared", "services"):
        mine = [c for c in classes if c.where.startswith(tree + "/")]
        big = max(mine, key=lambda s: s.lines)
        size, path = max(m for m in modules if str(m[1]).startswith(tree + "/"))
        log.info(
            "  in %s/: module %s (%d lines), class %s (%d)", tree, path, size, big.where, big.lines
        )
    trees = ", ".join(TREES)
    log.info("functions over %d lines (%s): %d", LONG_FUNCTION, trees, len(long_functions))
    for span in long_functions if args.list else long_functions[:5]:
        log.info("  %4d  %s", span.lines, span.where)
    log.info(
        "shared/: %d packages (%s), %d loose modules", len(layers), ", ".join(layers), len(loose)
    )
    found = cycles("shared")
    log.info("import cycles in shared (any import, even inside a function): %d", len(found))
    for component in found:
        log.info("  %s", " <-> ".join(component))


if __name__ == "__main__":
    main()
