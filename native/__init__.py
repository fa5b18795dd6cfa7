"""spiraltorch_tuner: row-wise TopK and N-d where on CUDA (CuPy), MPS, WebGPU (wgpu-py) and NumPy, with one API.

    import spiraltorch_tuner as stt
    values, indices = stt.topk2d(x, k, device="auto")    # x: float32 [rows, cols]
    out = stt.where_nd(cond, x, y, device="auto")         # NumPy broadcasting, any strides
    stt.last_choice()                                     # the configuration that ran, and where it came from

`device="auto"` takes the first available of CUDA, MPS, WGPU, CPU; `stt.backends()` says which are available and
why not. The WGPU backend runs the very WGSL files the browser tuner measures (shaders/). Without `params` a call
runs the tuned configuration for the device's class (rules.py: the user's heuristics source, then the rules shipped
in the package, then the fixed default); `params="default"` forces the fixed default; a dict is run as given.
The name `spiraltorch` is SpiralTorch's own package; with its wheel installed, device="spiraltorch" runs its
WgpuRank TopK beside ours.
"""
from __future__ import annotations

import threading

import numpy as np

from . import gen, rules
from .backend import Timing, check_topk_args, check_where_args
from .errors import (BackendUnavailable, DTypeError, KernelError, ParamsError, ShapeError, SpiralTorchError,
                     Unsupported)
from .registry import AUTO_ORDER, DEVICES, backends, resolve
from .rules import Choice, HeuristicsError

__all__ = ["topk2d", "where_nd", "backends", "backend_for", "time_topk2d", "time_where_nd", "gen", "Timing",
           "SpiralTorchError", "ShapeError", "DTypeError", "ParamsError", "BackendUnavailable", "KernelError",
           "HeuristicsError", "Unsupported", "DEVICES", "AUTO_ORDER", "Choice", "last_choice", "choose_topk", "choose_where_nd",
           "set_heuristics", "choose", "where_query"]

_last = threading.local()


def backend_for(device: str = "auto"):
    """The backend object `device` resolves to here (raises BackendUnavailable with the reason)."""
    if not isinstance(device, str):
        raise BackendUnavailable(f"device must be a string, one of {', '.join(DEVICES)}; got {device!r}")
    return resolve(device)


def set_heuristics(source) -> None:
    """Point the tuned defaults at a heuristics source: a path (a run document, a list of them, a rules file or
    SpiralTorch's tuner_results.json), such data already parsed, or None to go back to SPIRALTORCH_TUNER_HEURISTICS
    and the shipped rules. Raises HeuristicsError naming the problem; the previous source stays then."""
    rules.BOOK.set(source)


def last_choice() -> Choice | None:
    """The configuration the last topk2d / where_nd / time_* call of this thread ran with, and its source."""
    return getattr(_last, "choice", None)


def choose(kernel: str, backend, query: tuple, params=None, extra=None) -> Choice:
    """The Choice for a call of `kernel` on a backend object: `params` a dict (run as given), "default" (the fixed
    default) or None (the tuned rule, rules.choose; `extra`: a further rule source after the user's)."""
    if isinstance(params, dict):
        return Choice(kernel, dict(params), "explicit")
    if params is not None and params != "default":
        raise ParamsError(f"params must be a configuration (a dict), None (the tuned rule) or \"default\" (the "
                          f"fixed default); got {params!r}")
    fixed = getattr(backend, "fixed_default", None)
    if fixed is None:                      # a backend with one configuration (NumPy, MPS, SpiralTorch's)
        return Choice(kernel, {}, "default")
    default = fixed(kernel, query)
    if params == "default":
        return Choice(kernel, default, "default")
    info = backend.info()
    return rules.choose(kernel, backend, info, query, info.get("limits", {}), info.get("features", []), default,
                        extra)


def choose_topk(rows: int, cols: int, k: int, *, device: str = "auto", params=None) -> Choice:
    """The configuration topk2d would run for a [rows, cols] input and k on `device`, without running it."""
    return choose("topk", backend_for(device), (int(rows), int(cols), int(k)), params)


def where_query(cond, x, y) -> tuple:
    """(numel, ndim, contiguous) of a where_nd call: contiguous when every input is C-contiguous at the output
    shape (no broadcast, no reversed axis), as the tuner's case "contiguous" is."""
    shape = np.broadcast_shapes(cond.shape, x.shape, y.shape)
    contiguous = all(a.shape == shape and a.flags.c_contiguous for a in (cond, x, y))
    return int(np.prod(shape, dtype=np.int64)), len(shape), contiguous


def choose_where_nd(numel: int, ndim: int, contiguous: bool, *, device: str = "auto", params=None) -> Choice:
    """The configuration where_nd would run for `numel` outputs over `ndim` dimensions, without running it."""
    return choose("where_nd", backend_for(device), (int(numel), int(ndim), bool(contiguous)), params)


def _run(kernel, device, query, params, call):
    b = backend_for(device)
    c = choose(kernel, b, query, params)
    out = call(b, c.params or None)
    _last.choice = c
    return out


def topk2d(x: np.ndarray, k: int, *, device: str = "auto", params: dict | str | None = None, sorted: bool = True):
    """The k largest values of each row of float32 `x` [rows, cols] and their column indices, both [rows, k]:
    sorted descending, equal values to the lower index, NaN larger than every number. Returns (float32, int64).
    `params`: a kernel configuration (see shaders/space.json), None for the tuned rule, "default" for the fixed
    default; last_choice() tells which ran. sorted=False: the same k of each row in any order (as torch.topk's);
    the CUDA backend then skips the sort where its radix pipeline runs, the others return them sorted."""
    check_topk_args(x, k)
    return _run("topk", device, (*x.shape, int(k)), params, lambda b, p: b.topk2d(x, int(k), p, sorted=sorted))


def where_nd(cond: np.ndarray, x: np.ndarray, y: np.ndarray, *, device: str = "auto",
             params: dict | str | None = None):
    """`cond ? x : y` with NumPy broadcasting over up to 6 dimensions; float32 or int32 values, bool `cond`.
    Views (negative strides, slices, broadcasts) are passed by base offset and byte strides, not copied.
    `params` as for topk2d."""
    cond, x, y = (np.asarray(a) if np.isscalar(a) else a for a in (cond, x, y))
    check_where_args(cond, x, y)
    return _run("where_nd", device, where_query(cond, x, y), params, lambda b, p: b.where_nd(cond, x, y, p))


def time_topk2d(x, k, *, device="auto", params=None, repeats=10, warmups=2, sorted=True) -> Timing:
    """Kernel time of topk2d on a backend: GPU timestamps / CUDA events where there are, else wall time."""
    check_topk_args(x, k)
    return _run("topk", device, (*x.shape, int(k)), params,
                lambda b, p: b.time_topk2d(x, int(k), p, repeats=repeats, warmups=warmups, sorted=sorted))


def time_where_nd(cond, x, y, *, device="auto", params=None, repeats=10, warmups=2) -> Timing:
    """Time of where_nd on a backend. wgpu: a call with its uploads on the wall clock, and (with timestamp queries)
    `kernel_ms`, the kernel alone with the inputs resident; CUDA: the kernel (CUDA events); cpu, mps: wall time."""
    check_where_args(cond, x, y)
    return _run("where_nd", device, where_query(cond, x, y), params,
                lambda b, p: b.time_where_nd(cond, x, y, p, repeats=repeats, warmups=warmups))
