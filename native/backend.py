"""The one interface every backend module implements, and the argument checks they share."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .errors import DTypeError, ShapeError
from .shaders import space

MAX_NDIM = space()["where_nd"]["bounds"]["ndim"][1]
MAX_K = space()["topk"]["bounds"]["k"][1]


@dataclass
class Timing:
    timer: str                      # "timestamp" (GPU timestamp queries), "cuda-event", or "wall"
    samples_ms: list = field(default_factory=list)
    chains: int = 1                 # back-to-back copies of the dispatch chain per sample (sample = interval / chains)
    clock: float | None = None      # clock canary's time beside the samples / its best time (1.0: full clock)
    kernel_ms: float | None = None  # where samples are end to end (uploads included): the kernel's own GPU time

    @classmethod
    def of(cls, timer: str, samples_ms, chains: int = 1, clock: float | None = None,
           kernel_ms: float | None = None) -> "Timing":
        return cls(timer, [float(s) for s in samples_ms], int(chains), clock,
                   None if kernel_ms is None else float(kernel_ms))

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def spread(self) -> float:
        m = self.median_ms
        return (max(self.samples_ms) - min(self.samples_ms)) / m if m > 0 else 0.0

    def as_dict(self) -> dict:
        d = {"timer": self.timer, "median_ms": self.median_ms, "min_ms": self.min_ms, "spread": self.spread,
             "samples_ms": self.samples_ms}
        if self.chains > 1:
            d["chains"] = self.chains
        if self.clock is not None:
            d["clock"] = self.clock
        if self.kernel_ms is not None:
            d["kernel_ms"] = self.kernel_ms
        return d


def wall_timing(fn, repeats: int, warmups: int, sync=None) -> Timing:
    """Wall time of `fn()` in ms, `repeats` samples after `warmups` calls; `sync()` (a device's synchronize) runs
    before the clock starts and before it stops, so queued device work is inside the sample."""
    for _ in range(warmups):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    return Timing.of("wall", samples)


class Backend(Protocol):
    name: str

    def available(self) -> tuple[bool, str]: ...
    def info(self) -> dict: ...
    # sorted=False: each row's k largest in any order; a backend without an unsorted kernel returns them sorted
    def topk2d(self, x: np.ndarray, k: int, params: dict | None = None,
               sorted: bool = True) -> tuple[np.ndarray, np.ndarray]: ...
    def where_nd(self, cond: np.ndarray, x: np.ndarray, y: np.ndarray, params: dict | None = None) -> np.ndarray: ...
    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing: ...
    # call: (repeats, warmups) at most for a call with its uploads, where a backend also times the kernel alone
    # (wgpu with timestamps: the tuner passes space.json's where_nd.call_timing); others time one thing and ignore it
    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None) -> Timing: ...


def check_topk_args(x, k) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise DTypeError(f"x must be a numpy.ndarray of float32, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise DTypeError(f"x must be float32, got {x.dtype}; convert with x.astype(np.float32)")
    if x.ndim != 2:
        raise ShapeError(f"x must be 2-d [rows, cols], got {x.ndim}-d shape {x.shape}")
    rows, cols = x.shape
    if rows < 1 or cols < 1:
        raise ShapeError(f"x must have rows >= 1 and cols >= 1, got shape {x.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ShapeError(f"k must be an integer, got {type(k).__name__}")
    if not 1 <= k <= min(cols, MAX_K):
        raise ShapeError(f"k must satisfy 1 <= k <= min(cols, {MAX_K}) = {min(cols, MAX_K)}, got k={k}")
    return x


def check_where_args(cond, x, y):
    for name, a in (("cond", cond), ("x", x), ("y", y)):
        if not isinstance(a, np.ndarray):
            raise DTypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if cond.dtype != np.bool_:
        raise DTypeError(f"cond must be bool, got {cond.dtype}")
    if x.dtype != y.dtype or x.dtype not in (np.float32, np.int32):
        raise DTypeError(f"x and y must both be float32 or both int32, got {x.dtype} and {y.dtype}")
    try:
        out_shape = np.broadcast_shapes(cond.shape, x.shape, y.shape)
    except ValueError:
        raise ShapeError(f"shapes do not broadcast: cond {cond.shape}, x {x.shape}, y {y.shape}") from None
    if len(out_shape) > MAX_NDIM:
        raise ShapeError(f"at most {MAX_NDIM} dimensions are supported, the broadcast shape {out_shape} has {len(out_shape)}")
    return cond, x, y
