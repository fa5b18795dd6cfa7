"""Imports for the bench scripts when they run from a checkout (`python3 bench/NAME.py`) where the packages are not
installed, as on the lent GPU machine: native/ loaded under its package name `spiraltorch`, and the heuristics rule
(server/heuristics.py, standard library only) without the web server's dependencies."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path, package_dir: Path | None = None):
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_dir)] if package_dir else None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def ensure_spiraltorch():
    """`import spiraltorch`, from the install or else from native/."""
    try:
        import spiraltorch
    except ImportError:
        spiraltorch = _load("spiraltorch", ROOT / "native" / "__init__.py", ROOT / "native")
    return spiraltorch


def heuristics():
    """The module of the wgpu_heuristics.rs rule: spiraltorch_tuner.heuristics, or server/heuristics.py directly."""
    try:
        from spiraltorch_tuner import heuristics as mod
    except ImportError:
        mod = _load("st_heuristics", ROOT / "server" / "heuristics.py")
    return mod
