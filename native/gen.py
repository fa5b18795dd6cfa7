"""The shared input generator: an integer hash of (seed, stream, flat index) mapped to numbers.

static/gen.js implements the same steps, so any input the browser measured can be rebuilt here bit for bit.
Streams: TopK input 0; where_nd cond 1, x 2, y 3.
"""
from __future__ import annotations

import numpy as np

STREAM_TOPK, STREAM_COND, STREAM_X, STREAM_Y = 0, 1, 2, 3
DISTRIBUTIONS = ("uniform", "ties")


def _lowbias32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def hash_u32(seed: int, stream: int, n: int, start: int = 0) -> np.ndarray:
    """hash(seed, stream, i) for i in [start, start + n) as uint32."""
    s = np.uint32((seed ^ ((stream * 0x9E3779B9) & 0xFFFFFFFF)) & 0xFFFFFFFF)
    key = _lowbias32(np.array([s], dtype=np.uint32))[0]
    i = np.arange(start, start + n, dtype=np.uint64).astype(np.uint32)
    with np.errstate(over="ignore"):
        return _lowbias32(i ^ key)


def floats(seed: int, shape, stream: int = STREAM_TOPK, dist: str = "uniform") -> np.ndarray:
    """float32 values in [-1, 1): 'uniform' keeps 24 random bits, 'ties' only 4 (16 distinct values)."""
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {dist!r}; allowed: {', '.join(DISTRIBUTIONS)}")
    n = int(np.prod(shape, dtype=np.int64))
    h = hash_u32(seed, stream, n)
    if dist == "uniform":
        v = (h >> np.uint32(8)).astype(np.float64) / float(1 << 23) - 1.0
    else:
        v = (h >> np.uint32(28)).astype(np.float64) / 8.0 - 1.0
    return v.astype(np.float32).reshape(shape)


def ints(seed: int, shape, stream: int) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return hash_u32(seed, stream, n).view(np.int32).reshape(shape)


def bools(seed: int, shape, stream: int = STREAM_COND) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return ((hash_u32(seed, stream, n) & np.uint32(1)) == 1).reshape(shape)
