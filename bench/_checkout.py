"""Imports for the bench scripts when they run from a checkout (`python3 bench/NAME.py`) where the package is not
installed, as on the lent GPU machine: native/ loaded under its package name `spiraltorch_tuner` (NumPy is its only
hard dependency; the web server under spiraltorch_tuner.server is not needed)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_package():
    """`import spiraltorch_tuner`, from the install or else from native/."""
    try:
        import spiraltorch_tuner
    except ImportError:
        spec = importlib.util.spec_from_file_location("spiraltorch_tuner", ROOT / "native" / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / "native")])
        spiraltorch_tuner = importlib.util.module_from_spec(spec)
        sys.modules["spiraltorch_tuner"] = spiraltorch_tuner
        spec.loader.exec_module(spiraltorch_tuner)
    return spiraltorch_tuner


def ensure_server():
    """`import spiraltorch_tuner.server` (the web app), from the install or else from server/ beside native/."""
    ensure_package()
    try:
        import spiraltorch_tuner.server as server
    except ImportError:
        spec = importlib.util.spec_from_file_location("spiraltorch_tuner.server", ROOT / "server" / "__init__.py",
                                                      submodule_search_locations=[str(ROOT / "server")])
        server = importlib.util.module_from_spec(spec)
        sys.modules["spiraltorch_tuner.server"] = server
        spec.loader.exec_module(server)
    return server


def heuristics():
    """The module of the wgpu_heuristics.rs rule (spiraltorch_tuner.heuristics)."""
    ensure_package()
    from spiraltorch_tuner import heuristics as mod
    return mod
