"""SpiralTorch's own TopK as a peer backend (device="spiraltorch"): the `spiraltorch` wheel's
`WgpuRank("topk", rows, cols, k)` on the same input, so its kernels can be set beside ours (REST, compare view,
bench/bench_gpu.py). Available when that wheel is importable (`pip install --no-deps spiraltorch`); never picked by
device="auto".

A call uploads the input (`upload(spiraltorch.Tensor(rows, cols, values))`), dispatches once, synchronizes and reads
back `values` / `indices`. Timing is SpiralTorch's own: `profile(1)`'s `gpu_span_ns` per sample (its instrumented
passes, uploads excluded). Its planner picks its own configuration, so `params` are not accepted, and it has no
where_nd. Its answers can differ from our oracle's (NaN, the order of ties); tuner.describe_topk_difference says
how, row by row.
"""
from __future__ import annotations

import threading

import numpy as np

from .backend import Timing, check_topk_args
from .errors import BackendUnavailable, KernelError, ParamsError, Unsupported

NAME = "spiraltorch"
RANKS_KEPT = 8          # WgpuRank objects kept per shape (each holds its pipelines and buffers)


class SpiralTorchBackend:
    name = NAME

    def __init__(self):
        self._lock = threading.RLock()
        self._st = None
        self._why = None
        self._ranks: dict = {}
        self._info = None

    def _module(self):
        if self._st is None and self._why is None:
            try:
                import spiraltorch
            except ImportError as e:
                self._why = (f"SpiralTorch's wheel is not installed ({e}); pip install --no-deps spiraltorch "
                             "to run its WgpuRank TopK beside ours")
            else:
                if not hasattr(spiraltorch, "WgpuRank"):
                    self._why = f"the installed spiraltorch {getattr(spiraltorch, '__version__', '?')} has no WgpuRank"
                else:
                    self._st = spiraltorch
        if self._st is None:
            raise BackendUnavailable(self._why)
        return self._st

    def _rank(self, rows: int, cols: int, k: int):
        key = (rows, cols, k)
        if key not in self._ranks:
            st = self._module()
            if len(self._ranks) >= RANKS_KEPT:
                self._ranks.pop(next(iter(self._ranks)))
            try:
                self._ranks[key] = st.WgpuRank("topk", rows, cols, k, timestamp_queries=True)
            except Exception as e:   # no adapter, or a shape its planner refuses
                raise KernelError(f"spiraltorch.WgpuRank('topk', {rows}, {cols}, {k}) failed: {e}") from None
        return self._ranks[key]

    def available(self) -> tuple[bool, str]:
        try:
            self.info()
            return True, ""
        except (BackendUnavailable, KernelError) as e:
            return False, str(e)

    def info(self) -> dict:
        with self._lock:
            if self._info is None:
                st = self._module()
                a = self._rank(1, 8, 1).adapter_info()
                self._info = {"name": NAME, "device": str(a.get("name", "")), "backend": str(a.get("backend", "")),
                              "adapter_type": str(a.get("device_type", "")),
                              "spiraltorch": getattr(st, "__version__", ""), "timer": "spiraltorch-profile"}
            return self._info

    def _upload(self, x: np.ndarray, k: int):
        rows, cols = x.shape
        r = self._rank(rows, cols, int(k))
        r.upload(self._st.Tensor(rows, cols, np.ascontiguousarray(x, dtype=np.float32).ravel().tolist()))
        return r

    @staticmethod
    def _no_params(params):
        if params:
            raise ParamsError(f"SpiralTorch's WgpuRank plans its own configuration; it takes no params, got {params}")

    def topk2d(self, x, k, params=None, sorted=True):     # sorted=False: returned sorted all the same
        x = check_topk_args(x, k)
        self._no_params(params)
        rows = x.shape[0]
        with self._lock:
            r = self._upload(x, k)
            try:
                r.dispatch(1)
                r.synchronize()
                out = r.readback()
            except Exception as e:
                raise KernelError(f"spiraltorch WgpuRank topk failed: {e}") from None
        v = np.asarray(out["values"], dtype=np.float32).reshape(rows, k)
        i = np.asarray(out["indices"], dtype=np.int64).reshape(rows, k)
        return v, i

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        x = check_topk_args(x, k)
        self._no_params(params)
        with self._lock:
            r = self._upload(x, k)
            try:
                for _ in range(warmups):
                    r.dispatch(1)
                r.synchronize()
                samples = [r.profile(1)["gpu_span_ns"] / 1e6 for _ in range(max(1, repeats))]
            except Exception as e:
                raise KernelError(f"spiraltorch WgpuRank profile failed: {e}") from None
        return Timing.of("spiraltorch-profile", samples)

    def where_nd(self, cond, x, y, params=None):
        raise Unsupported("SpiralTorch's wheel has no where_nd kernel to run beside ours; use device='wgpu'")

    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None):
        self.where_nd(cond, x, y, params)
