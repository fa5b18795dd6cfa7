"""spiraltorch_tuner: row-wise TopK and N-d where on CUDA (CuPy), MPS, WebGPU (wgpu-py) and NumPy, with one API.

    import spiraltorch_tuner as st
    values, indices = st.topk2d(x, k, device="auto")    # x: float32 [rows, cols]
    out = st.where_nd(cond, x, y, device="auto")         # NumPy broadcasting, any strides

`device="auto"` takes the first available of CUDA, MPS, WGPU, CPU; `st.backends()` says which are available and why
not. The WGPU backend runs the very WGSL files the browser tuner measures (shaders/).
"""
from __future__ import annotations

import numpy as np

from . import gen
from .backend import Timing, check_topk_args, check_where_args
from .errors import BackendUnavailable, DTypeError, KernelError, ParamsError, ShapeError, SpiralTorchError
from .registry import AUTO_ORDER, DEVICES, backends, resolve

__all__ = ["topk2d", "where_nd", "backends", "backend_for", "time_topk2d", "time_where_nd", "gen", "Timing",
           "SpiralTorchError", "ShapeError", "DTypeError", "ParamsError", "BackendUnavailable", "KernelError",
           "DEVICES", "AUTO_ORDER"]


def backend_for(device: str = "auto"):
    """The backend object `device` resolves to here (raises BackendUnavailable with the reason)."""
    if not isinstance(device, str):
        raise BackendUnavailable(f"device must be a string, one of {', '.join(DEVICES)}; got {device!r}")
    return resolve(device)


def topk2d(x: np.ndarray, k: int, *, device: str = "auto", params: dict | None = None):
    """The k largest values of each row of float32 `x` [rows, cols] and their column indices, both [rows, k]:
    sorted descending, equal values to the lower index, NaN larger than every number. Returns (float32, int64).
    `params` is a kernel configuration (see shaders/space.json); None uses the backend's default."""
    check_topk_args(x, k)
    return backend_for(device).topk2d(x, int(k), params)


def where_nd(cond: np.ndarray, x: np.ndarray, y: np.ndarray, *, device: str = "auto", params: dict | None = None):
    """`cond ? x : y` with NumPy broadcasting over up to 6 dimensions; float32 or int32 values, bool `cond`.
    Views (negative strides, slices, broadcasts) are passed by base offset and byte strides, not copied."""
    cond, x, y = (np.asarray(a) if np.isscalar(a) else a for a in (cond, x, y))
    check_where_args(cond, x, y)
    return backend_for(device).where_nd(cond, x, y, params)


def time_topk2d(x, k, *, device="auto", params=None, repeats=10, warmups=2) -> Timing:
    """Kernel time of topk2d on a backend: GPU timestamps / CUDA events where there are, else wall time."""
    check_topk_args(x, k)
    return backend_for(device).time_topk2d(x, int(k), params, repeats=repeats, warmups=warmups)


def time_where_nd(cond, x, y, *, device="auto", params=None, repeats=10, warmups=2) -> Timing:
    """Time of where_nd on a backend. wgpu: a call with its uploads on the wall clock, and (with timestamp queries)
    `kernel_ms`, the kernel alone with the inputs resident; CUDA: the kernel (CUDA events); cpu, mps: wall time."""
    check_where_args(cond, x, y)
    return backend_for(device).time_where_nd(cond, x, y, params, repeats=repeats, warmups=warmups)
