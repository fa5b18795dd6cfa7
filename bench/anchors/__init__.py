"""Anchors: other libraries' TopK, timed by bench/bench_gpu.py beside ours on the same inputs and checked against
the same oracle (check.py says how strictly). Each anchor has available() -> (ok, why), info() and enqueue(...);
VARIANTS lists what is timed, `column` marking the two that get a column in the per-shape table.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .check import GRADES, grade_topk
from .cub_topk import CubTopK
from .flashinfer_topk import FlashInferTopK

__all__ = ["GRADES", "VARIANTS", "Variant", "CubTopK", "FlashInferTopK", "grade_topk", "load_all",
           "load_in_background", "make_anchors"]


@dataclass(frozen=True)
class Variant:
    key: str             # its name in the JSON log
    anchor: str          # "flashinfer" or "cub"
    call: str            # what runs, in words
    sorted_output: bool  # the k results come back sorted descending (as ours and torch.topk's do)
    tie_break: int = 0   # CUB: 1 asks for the lower indices at the k-th value (the oracle's set)
    require: str = "tie choice"   # the loosest grade of check.GRADES that passes
    column: bool = False


VARIANTS = [
    Variant("flashinfer", "flashinfer", "flashinfer.top_k(x, k, sorted=True)", True, column=True),
    Variant("flashinfer_unsorted", "flashinfer", "flashinfer.top_k(x, k) (sorted=False, its default)", False),
    Variant("cub", "cub", "DeviceBatchedTopK::MaxPairs (not_guaranteed, unspecified tie) + "
            "DeviceSegmentedSort::SortPairsDescending", True, column=True),
    Variant("cub_unsorted", "cub", "DeviceBatchedTopK::MaxPairs (not_guaranteed, unspecified tie), unsorted", False),
    Variant("cub_lower_index", "cub", "DeviceBatchedTopK::MaxPairs (gpu_to_gpu, prefer_smaller_index) + "
            "DeviceSegmentedSort::SortPairsDescending", True, tie_break=1, require="same set"),
]


def make_anchors(device: int = 0) -> dict:
    """name -> anchor, not yet loaded or built (available() does that, once)."""
    return {"flashinfer": FlashInferTopK(device), "cub": CubTopK(device)}


def _load(a) -> dict:
    t0 = time.perf_counter()
    ok, why = a.available()
    return {"available": ok, "why": why or None, "load_s": round(time.perf_counter() - t0, 1), **a.info()}


def load_in_background(found: dict) -> dict:
    """Start loading (import, JIT-build, nvcc-build) every anchor, each in a thread of its own: each spends its time
    in compiler processes (FlashInfer's JIT takes minutes on a machine's first run). name -> Future of
    {available, why, load_s, **info()}."""
    pool = ThreadPoolExecutor(len(found) or 1, thread_name_prefix="anchor")
    futures = {name: pool.submit(_load, a) for name, a in found.items()}
    pool.shutdown(wait=False)
    return futures


def load_all(found: dict) -> dict:
    """load_in_background, waited for: name -> {available, why, load_s, **info()}."""
    return {name: f.result() for name, f in load_in_background(found).items()}
