"""The wheel works outside a checkout: every file the package reads at run time (shaders/, static/, the server's
templates) is package data of the package pyproject.toml maps its folder to, so `pip install spiraltorch_tuner-*.whl`
carries it; native/paths.py finds the installed copy before a checkout's."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from spiraltorch_tuner import paths

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _folder(package: str, package_dir: dict) -> Path:
    """The folder setuptools builds `package` from (package-dir, else its parent's folder plus its last name)."""
    if package in package_dir:
        return ROOT / package_dir[package]
    parent, _, name = package.rpartition(".")
    return _folder(parent, package_dir) / name


@pytest.mark.parametrize("folder", ["shaders", "static", "server/templates"])
def test_every_data_file_is_package_data(folder):
    cfg = _setuptools()
    globs = {_folder(p, cfg["package-dir"]): pats for p, pats in cfg["package-data"].items()}
    assert set(cfg["package-data"]) <= set(cfg["packages"])
    missing = []
    for f in sorted((ROOT / folder).rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".py":
            pats = globs.get(f.parent, [])
            if not any(fnmatch.fnmatch(f.name, p) for p in pats):
                missing.append(str(f.relative_to(ROOT)))
    assert not missing, f"not in pyproject.toml's package-data, so missing from a wheel: {missing}"


def test_the_wheel_puts_shaders_and_static_where_paths_looks():
    cfg = _setuptools()
    assert cfg["package-dir"]["spiraltorch_tuner.data.shaders"] == "shaders"
    assert cfg["package-dir"]["spiraltorch_tuner.data.static"] == "static"
    assert paths.SHADERS == paths._data("shaders") and paths.STATIC == paths._data("static")


def test_an_installed_copy_comes_before_the_checkout(tmp_path, monkeypatch):
    (tmp_path / "data" / "shaders").mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGE", tmp_path)
    assert paths._data("shaders") == tmp_path / "data" / "shaders"
    assert paths._data("static") == paths.ROOT / "static"          # no installed copy: the checkout's
