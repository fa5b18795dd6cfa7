"""No two modules of the project import each other, at module level or inside a function (a shared piece has one
home: server/tables.py for the two stores, server/merge.py for the report and the generator); no longer circles."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Directory -> package name, as pyproject.toml's package-dir maps them.
PACKAGES = {"native": "spiraltorch_tuner", "server": "spiraltorch_tuner.server",
            "server/routes": "spiraltorch_tuner.server.routes"}


def test_the_scanned_packages_are_those_pyproject_maps():
    tomllib = pytest.importorskip("tomllib")
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    code = {d: name for name, d in package_dir.items() if any((ROOT / d).glob("*.py"))}
    assert code == PACKAGES


def _modules() -> dict[str, Path]:
    mods = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            mods[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (functions included), relative imports resolved;
    `from P import X` counts as importing P.X where that is a module, else P."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in out if m in known and m != name}


def test_no_two_modules_import_each_other():
    mods = _modules()
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    assert "spiraltorch_tuner.server.store" in graph and graph["spiraltorch_tuner"], "the scan found no imports"
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not pairs, f"modules that import each other: {pairs}"


def test_no_import_cycles():
    """No longer circles either (a -> b -> c -> a); a package importing its own submodules is not a circle unless
    one of them imports the package back (the implicit import of a parent package does not count)."""
    mods = _modules()
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    seen, stack, cycles = {}, [], []

    def visit(n):
        seen[n] = "open"
        stack.append(n)
        for m in sorted(graph[n]):
            if seen.get(m) == "open":
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in seen:
                visit(m)
        stack.pop()
        seen[n] = "done"

    for n in sorted(graph):
        if n not in seen:
            visit(n)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
