"""Every import between synthdiv's modules, counted the way a reader meets them: at the top, inside functions
(deferred) and under ``TYPE_CHECKING``, with the import cycles that all of them together make.

    .venv/bin/python scripts/import_graph.py            # summary: modules, packages, deferred imports, cycles
    .venv/bin/python scripts/import_graph.py --deferred # each deferred synthdiv-internal import, where it is

A cycle is a strongly connected component of the module graph with more than one module (or a module importing
itself), counting every edge kind. Edges go to the module imported: ``from synthdiv.a import b`` is an edge to
``synthdiv.a.b`` when that is a module, else to ``synthdiv.a``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def collect(src: Path = SRC) -> tuple[set[str], list[tuple[str, str, str, int]]]:
    """All synthdiv modules, and edges ``(importer, imported, kind, line)`` with kind top / deferred / typing."""
    files = {_module_name(p, src): p for p in (src / "synthdiv").rglob("*.py")}
    modules = set(files)
    edges = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST, kind: str, name: str = name, package: str = package) -> None:
            for child in ast.iter_child_nodes(node):
                child_kind = kind
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    child_kind = "deferred" if kind == "top" else kind
                elif isinstance(child, ast.If) and _is_type_checking(child):
                    child_kind = "typing"
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        up = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join(up + ([base] if base else []))
                    targets = [f"{base}.{a.name}" for a in child.names] + [base]
                for target in targets:
                    if target.startswith("synthdiv"):
                        resolved = _resolve(target, modules)
                        if resolved and resolved != name:
                            edges.append((name, resolved, child_kind, child.lineno))
                visit(child, child_kind)

        visit(tree, "top")
    unique = {(a, b, k, line) for a, b, k, line in edges}
    return modules, sorted(unique)


def cycles(modules: set[str], edges: list[tuple[str, str, str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _, _ in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


# imported inside functions so that ``import synthdiv``, ``synthdiv --help`` and the config stay light
HEAVY = ("torch", "torchvision", "diffusers", "timm", "open_clip", "transformers", "ray", "matplotlib", "accelerate",
         "xgrammar", "safetensors", "huggingface_hub")


def heavy_modules(src: Path = SRC) -> set[str]:
    """synthdiv modules that import a heavy library (:data:`HEAVY`) when imported: at their top, or through a
    synthdiv module (or package) they import at their top."""
    files = {_module_name(p, src): p for p in (src / "synthdiv").rglob("*.py")}
    modules = set(files)
    direct: dict[str, bool] = {}
    deps: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found, needs = False, set()
        for node in _top_imports(tree.body):
            for target in _targets(node, package):
                if target.split(".")[0] in HEAVY:
                    found = True
                elif target.startswith("synthdiv") and (resolved := _resolve(target, modules)) and resolved != name:
                    parts = resolved.split(".")
                    needs |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)} & modules - {name}
        direct[name], deps[name] = found, needs
    heavy = {m for m in modules if direct[m]}
    grew = True
    while grew:
        grew = False
        for m in modules - heavy:
            if deps[m] & heavy:
                heavy.add(m)
                grew = True
    return heavy


def _top_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            out += _top_imports(node.body) + _top_imports(node.orelse)
        elif isinstance(node, ast.Try):
            out += _top_imports(node.body)
    return out


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names] + [base]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deferred", action="store_true", help="list every deferred synthdiv-internal import")
    args = parser.parse_args()
    modules, edges = collect()
    packages = {m for m in modules if (SRC / m.replace(".", "/") / "__init__.py").exists()}
    top_level = [m for m in modules if m.count(".") == 1 and m not in packages]
    deferred = [e for e in edges if e[2] == "deferred"]
    found = cycles(modules, edges)
    print(f"modules {len(modules)}, packages {len(packages)}, top-level modules {len(top_level)}")
    print(f"edges: top {sum(e[2] == 'top' for e in edges)}, deferred {len(deferred)}, "
          f"TYPE_CHECKING {sum(e[2] == 'typing' for e in edges)}")
    print(f"cycles (all edge kinds): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component[:8]) + (f" ... ({len(component)} modules)" if len(component) > 8 else ""))
    if args.deferred:
        for a, b, _, line in deferred:
            print(f"{a}:{line} -> {b}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
