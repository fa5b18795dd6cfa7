"""No Python file holds another language's source (CUDA, Rust, WGSL, JS) longer than 40 lines: kernels are files
in shaders/ (the WGSL and the CUDA C++), the generator's Rust fragments files in server/templates/rust/."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FOREIGN_LINES = 40


def _python_files():
    return sorted(p for p in ROOT.rglob("*.py") if not {".venv", ".git", "build", "node_modules"} & set(p.parts))


def _docstrings(tree) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_python_string_holds_more_than_40_lines_of_source():
    """Kernels (shaders/*.wgsl, *.cu) and Rust fragments (server/templates/rust/) live in their own files; a
    Python string (docstrings aside) of more than 40 lines is another language's source that belongs in one."""
    long = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docs:
                if isinstance(node, ast.Constant) and not isinstance(node.value, str):
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FOREIGN_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} ({lines} lines)")
    assert not long, f"strings of more than {MAX_FOREIGN_LINES} lines: {long}"


def test_no_js_string_holds_more_than_40_lines_of_source():
    """The page fetches the WGSL from shaders/ (static/shaders.js) instead of holding it in template literals."""
    long = []
    for path in sorted((ROOT / "static").glob("*.js")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"`[^`]*`", text):
            if m.group().count("\n") + 1 > MAX_FOREIGN_LINES:
                long.append(f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}")
    assert not long, f"template literals of more than {MAX_FOREIGN_LINES} lines: {long}"
