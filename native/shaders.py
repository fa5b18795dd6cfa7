"""Loads the kernels in shaders/ and assembles a module's source: a WGSL kernel's as static/shaders.js does in the
browser, and the CUDA C++ module of native/cuda.py."""
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


def is_radix(kernel: str, params: dict) -> bool:
    """Whether a configuration is of TopK's radix pipeline (space.json topk.radix: its own module and overrides)."""
    return kernel == "topk" and bool(params.get("radix", False))


def module_source(kernel: str, params: dict) -> str:
    """The WGSL of `kernel` ("topk" or "where_nd") for a configuration: the files space.json lists for it (for a
    radix configuration, topk.radix's), joined in order. naga accepts subgroup builtins without
    `enable subgroups;`, which the browser adds."""
    spec = space()[kernel]
    if is_radix(kernel, params):
        return "\n".join(read(name) for name in spec["radix"]["sources"])
    key = str(bool(params.get(spec.get("source_param", ""), False))).lower()
    return "\n".join(read(name) for name in spec["sources"][key])


def overrides(kernel: str, params: dict) -> dict:
    """Override constants of a configuration, by their WGSL names (a radix configuration's: topk.radix's)."""
    spec = space()[kernel]
    names = spec["radix"]["overrides"] if is_radix(kernel, params) else spec["overrides"]
    return {wgsl: int(params[p]) for p, wgsl in names.items() if p in params}


# The CUDA C++ module of native/cuda.py: one NVRTC module of these files in this order. topk.cu opens with the
# module's typedefs (u32, u64, u8), which where_nd.cu uses too; spin.cu is the timing helper of both.
CUDA_MODULE = ("topk.cu", "where_nd.cu", "spin.cu")


@functools.lru_cache(maxsize=None)
def cuda_source() -> str:
    """The CUDA C++ source cuda.py compiles: CUDA_MODULE's files, a blank line between them, after a leading newline
    (so the source is byte for byte the one CuPy compiled and cached before the kernels moved into files)."""
    return "\n" + "\n".join(read(name) for name in CUDA_MODULE)
