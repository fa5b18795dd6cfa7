"""The inputs a tuning run measures, rebuilt from (seed, shape): the same arrays the browser generated (static/
tuner.js builds them with static/gen.js from the same rules), so a browser run can be replayed natively.

TopK: x = floats(seed, (rows, cols), stream 0, dist).
where_nd cases (space.json where_nd.cases), for an output shape S and dtype:
  contiguous  cond = bools(seed, S, 1), x = values(seed, S, 2), y = values(seed, S, 3)
  neg_stride  as contiguous, but x is values(seed, S, 2) reversed along axis -2 (axis 0 for 1-d): a view with a
              negative stride, element (..., i, j) = base(..., n-1-i, j)
  broadcast   cond = bools(seed, S[:-1] + (1,), 1) broadcast along the last axis, x = values(seed, S, 2),
              y = values(seed, (1,), 3) broadcast to every element
values = floats (dist "uniform") for float32, ints for int32.
"""
from __future__ import annotations

import numpy as np

from . import gen
from .errors import DTypeError, ShapeError

WHERE_CASES = ("contiguous", "neg_stride", "broadcast")
WHERE_DTYPES = ("float32", "int32")


def topk_input(seed: int, rows: int, cols: int, dist: str = "uniform") -> np.ndarray:
    return gen.floats(seed, (rows, cols), gen.STREAM_TOPK, dist)


def _values(seed, shape, stream, dtype):
    return gen.floats(seed, shape, stream) if dtype == "float32" else gen.ints(seed, shape, stream)


def where_inputs(case: str, shape, dtype: str = "float32", seed: int = 1):
    """(cond, x, y) of a where_nd case; x may be a negative-stride view, cond and y broadcast."""
    shape = tuple(int(n) for n in shape)
    if case not in WHERE_CASES:
        raise ShapeError(f"unknown where_nd case {case!r}; allowed: {', '.join(WHERE_CASES)}")
    if dtype not in WHERE_DTYPES:
        raise DTypeError(f"unknown dtype {dtype!r}; allowed: {', '.join(WHERE_DTYPES)}")
    if not shape or any(n < 1 for n in shape):
        raise ShapeError(f"shape must have 1..6 positive dimensions, got {shape}")
    x = _values(seed, shape, gen.STREAM_X, dtype)
    if case == "broadcast":
        cond = gen.bools(seed, shape[:-1] + (1,), gen.STREAM_COND)
        y = _values(seed, (1,), gen.STREAM_Y, dtype)
        return cond, x, y
    cond = gen.bools(seed, shape, gen.STREAM_COND)
    y = _values(seed, shape, gen.STREAM_Y, dtype)
    if case == "neg_stride":
        axis = len(shape) - 2 if len(shape) >= 2 else 0
        x = np.flip(x, axis=axis)
    return cond, x, y
