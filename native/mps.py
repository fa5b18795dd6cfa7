"""MPS backend: PyTorch's Metal device on macOS (Apple GPUs). Elsewhere it reports why it is unavailable."""
from __future__ import annotations

import platform

import numpy as np

from .backend import Timing, check_topk_args, check_where_args, wall_timing
from .errors import BackendUnavailable

NAME = "mps"


class MpsBackend:
    name = NAME

    def __init__(self):
        self._why = None
        self._torch = None

    def available(self) -> tuple[bool, str]:
        if self._torch is not None:
            return True, ""
        if self._why is None:
            if platform.system() != "Darwin":
                self._why = f"MPS needs macOS; this is {platform.system()}"
            else:
                try:
                    import torch
                except ImportError:
                    self._why = "PyTorch is not installed (pip install torch)"
                else:
                    if torch.backends.mps.is_available():
                        self._torch = torch
                        return True, ""
                    self._why = "torch.backends.mps.is_available() is False"
        return False, self._why

    def _t(self):
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        return self._torch

    def info(self) -> dict:
        t = self._t()
        return {"name": NAME, "device": f"Apple MPS (torch {t.__version__})", "timer": "wall"}

    def topk2d(self, x, k, params=None, sorted=True):     # sorted=False: returned sorted all the same
        x = check_topk_args(x, k)
        t = self._t()
        vals, idx = _torch_topk(t, t.from_numpy(x).to("mps"), k)
        return vals.cpu().numpy(), idx.cpu().numpy().astype(np.int64)

    def where_nd(self, cond, x, y, params=None):
        cond, x, y = check_where_args(cond, x, y)
        t = self._t()
        args = [t.from_numpy(np.ascontiguousarray(a)).to("mps") for a in (cond, x, y)]
        return t.where(*args).cpu().numpy()

    def _wall(self, fn, repeats, warmups):
        t = self._t()
        return wall_timing(fn, repeats, warmups, sync=t.mps.synchronize)

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        x = check_topk_args(x, k)
        t = self._t()
        xt = t.from_numpy(x).to("mps")
        return self._wall(lambda: _torch_topk(t, xt, k), repeats, warmups)

    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None) -> Timing:
        cond, x, y = check_where_args(cond, x, y)
        t = self._t()
        args = [t.from_numpy(np.ascontiguousarray(a)).to("mps") for a in (cond, x, y)]
        return self._wall(lambda: t.where(*args), repeats, warmups)


def _torch_topk(torch, xt, k):
    """TopK with the project's semantics on any torch device: an order-preserving int32 key of each float
    (NaN largest, -0.0 below +0.0) sorted stably in descending order, so equal keys keep the lower index first."""
    b = xt.view(torch.int32)
    key = torch.where(b >= 0, b, b ^ 0x7FFFFFFF)
    key = torch.where(torch.isnan(xt), torch.full_like(key, 0x7FFFFFFF), key)
    _, order = torch.sort(key, dim=1, descending=True, stable=True)
    idx = order[:, :k]
    return torch.gather(xt, 1, idx), idx
