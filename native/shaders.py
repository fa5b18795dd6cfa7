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


# The CUDA C++ module of native/cuda.py: one NVRTC module of these files in this order. topk.cu opens with the
# module's typedefs (u32, u64, u8), which where_nd.cu uses too; spin.cu is the timing helper of both.
CUDA_MODULE = ("topk.cu", "where_nd.cu", "spin.cu")


@functools.lru_cache(maxsize=None)
def cuda_source() -> str:
    """The CUDA C++ source cuda.py compiles: CUDA_MODULE's files, a blank line between them, after a leading newline
    (so the source is byte for byte the one CuPy compiled and cached before the kernels moved into files)."""
    return "\n" + "\n".join(read(name) for name in CUDA_MODULE)
