"""Loads the WGSL in shaders/ and assembles a kernel's module source, as static/shaders.js does in the browser."""
from __future__ import annotations

import functools
import json

from .paths import SHADERS


@functools.lru_cache(maxsize=None)
def read(name: str) -> str:
    return (SHADERS / name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def space() -> dict:
    return json.loads(read("space.json"))


def module_source(kernel: str, params: dict) -> str:
    """The WGSL of `kernel` ("topk" or "where_nd") for a configuration: the files space.json lists for it,
    joined in order. naga accepts subgroup builtins without `enable subgroups;`, which the browser adds."""
    spec = space()[kernel]
    key = str(bool(params.get(spec.get("source_param", ""), False))).lower()
    return "\n".join(read(name) for name in spec["sources"][key])


def overrides(kernel: str, params: dict) -> dict:
    """Override constants of a configuration, by their WGSL names."""
    names = space()[kernel]["overrides"]
    return {wgsl: int(params[p]) for p, wgsl in names.items() if p in params}
