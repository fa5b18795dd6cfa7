"""NumPy backend: the reference implementation every other backend is checked against."""
from __future__ import annotations

import numpy as np

from .backend import Timing, check_topk_args, check_where_args, wall_timing

NAME = "cpu"


def sort_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values: NaN largest (all NaNs equal), -0.0 below +0.0."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    key = np.where(b & np.uint32(0x80000000), ~b, b | np.uint32(0x80000000))
    return np.where((b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000), np.uint32(0xFFFFFFFF), key).astype(np.uint32)


def topk_reference(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Largest k per row, sorted descending, ties to the lower index, NaN largest. Indices int64."""
    rows, cols = x.shape
    idx = np.arange(cols, dtype=np.uint64)
    comp = (sort_keys(x).astype(np.uint64) << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - idx)
    part = np.argpartition(comp, cols - k, axis=1)[:, cols - k:]
    picked = np.take_along_axis(comp, part, axis=1)
    order = np.argsort(picked, axis=1)[:, ::-1]
    cols_sel = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return np.take_along_axis(x, cols_sel, axis=1), cols_sel


class CpuBackend:
    name = NAME

    def available(self) -> tuple[bool, str]:
        return True, ""

    def info(self) -> dict:
        return {"name": NAME, "device": "NumPy " + np.__version__, "timer": "wall"}

    def topk2d(self, x, k, params=None, sorted=True):     # sorted=False: returned sorted all the same
        x = check_topk_args(x, k)
        return topk_reference(x, k)

    def where_nd(self, cond, x, y, params=None):
        cond, x, y = check_where_args(cond, x, y)
        return np.where(cond, x, y)

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        return wall_timing(lambda: self.topk2d(x, k), repeats, warmups)

    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None) -> Timing:
        return wall_timing(lambda: self.where_nd(cond, x, y), repeats, warmups)

