"""Draft, not measured on a GPU: WGSL TopK for long rows with each row spread over many workgroups
(shaders/topk_radix.wgsl: a radix select over the key in rounds of RB bits, a filter, a segmented sort), run with
wgpu-py on a WgpuBackend's device. Not in the tuner's search space, the page or the heuristics yet (GitHub issue #19
item 3): it is to be measured against the 2CE pipeline first (bench/radix_probe.py).

    from spiraltorch_tuner.wgpu_radix import RadixTopK
    values, indices = RadixTopK().topk2d(x, k)          # x: float32 [rows, cols]; same answer as cpu.topk_reference
"""
from __future__ import annotations

import numpy as np

from . import shaders
from .backend import Timing, check_topk_args
from .errors import KernelError, ParamsError

SOURCE = "topk_radix.wgsl"

# Parameters and their override constants. wg: invocations per workgroup; ch: columns per chunk (one workgroup of
# the histogram, count and filter passes); rb: key bits per round of the select; kl: consecutive columns per
# invocation in the filter's tie scan; seg: pairs per workgroup of the segmented sort (lowered to k's power of two).
DEFAULTS = {"wg": 256, "ch": 4096, "rb": 11, "kl": 4, "seg": 1024}
OVERRIDES = {"wg": "WG", "ch": "CH", "rb": "RB", "kl": "KL", "seg": "SEG"}

# WebGPU's default limits: every configuration accepted here runs on any WebGPU adapter.
DEFAULT_LIMITS = {"maxComputeWorkgroupStorageSize": 16384, "maxComputeInvocationsPerWorkgroup": 256,
                  "maxComputeWorkgroupsPerDimension": 65535, "maxStorageBuffersPerShaderStage": 8}
STORAGE_BUFFERS = 7


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def workgroup_bytes(p: dict) -> dict:
    """Workgroup memory of each entry point (the variables it uses; vec4 and the three counters included)."""
    return {"radix_hist": 4 * (1 << p["rb"]) + 16, "radix_select": 4 * p["wg"] + 16,
            "radix_count": 12 + 16, "radix_filter": 4 * p["wg"] + 12 + 16, "radix_segsort": 8 * p["seg"],
            "radix_rank": 0}


def plan_shape(rows: int, cols: int, k: int, params: dict | None = None) -> dict:
    """The configuration for a shape (DEFAULTS updated by `params`, seg lowered to k's power of two) with its
    derived counts, or ParamsError saying which limit or rule it breaks."""
    p = dict(DEFAULTS)
    if params:
        unknown = set(params) - set(p)
        if unknown:
            raise ParamsError(f"unknown radix TopK parameters {sorted(unknown)}; allowed: {sorted(p)}")
        p.update({n: int(v) for n, v in params.items()})
    p["seg"] = min(p["seg"], max(2, 1 << (k - 1).bit_length()))
    bad = []
    if not (_pow2(p["wg"]) and 32 <= p["wg"] <= DEFAULT_LIMITS["maxComputeInvocationsPerWorkgroup"]):
        bad.append(f"wg={p['wg']} must be a power of two in 32..256")
    if not 4 <= p["rb"] <= 11:
        bad.append(f"rb={p['rb']} must be in 4..11 (2^rb bins of 4 bytes in workgroup memory)")
    if not _pow2(p["seg"]):
        bad.append(f"seg={p['seg']} must be a power of two")
    if p["ch"] < p["wg"] or p["kl"] < 1:
        bad.append(f"ch={p['ch']} must be >= wg and kl={p['kl']} >= 1")
    nchunks = -(-cols // max(1, p["ch"]))
    wmax = DEFAULT_LIMITS["maxComputeWorkgroupsPerDimension"]
    if rows > wmax or nchunks > wmax:
        bad.append(f"rows={rows} and chunks per row={nchunks} must be <= {wmax}")
    for entry, nbytes in workgroup_bytes(p).items():
        if nbytes > DEFAULT_LIMITS["maxComputeWorkgroupStorageSize"]:
            bad.append(f"{entry} needs {nbytes} bytes of workgroup memory, over 16384")
    if bad:
        raise ParamsError(f"radix TopK configuration {p} is not legal for {rows}x{cols} k={k}: {'; '.join(bad)}")
    return {**p, "nchunks": nchunks, "nseg": -(-k // p["seg"]), "rounds": -(-32 // p["rb"]), "bins": 1 << p["rb"]}


def chain(p: dict, rows: int, k: int) -> list[tuple[str, tuple[int, int, int]]]:
    """The dispatches of one call, (entry point, workgroups), for a configuration from plan_shape."""
    per_row = (p["nchunks"], rows, 1)
    rank = [("radix_rank", (-(-k // p["wg"]), rows, 1))] if p["nseg"] > 1 else []   # else radix_segsort writes
    return ([("radix_hist", per_row), ("radix_select", (rows, 1, 1))] * p["rounds"]
            + [("radix_count", per_row), ("radix_filter", per_row), ("radix_segsort", (p["nseg"], rows, 1))] + rank)


class RadixTopK:
    """The radix TopK passes on a WgpuBackend's device (a new WgpuBackend when none is given)."""

    def __init__(self, backend=None):
        if backend is None:
            from .wgpu_backend import WgpuBackend
            backend = WgpuBackend()
        self.backend = backend
        self._layout = None
        self._pipelines: dict = {}
        self._module = None

    def _bind_layout(self):
        b = self.backend
        if self._layout is None or self._layout[2] is not b._device:
            bt = b._wgpu.BufferBindingType
            types = [bt.uniform, bt.read_only_storage] + [bt.storage] * (STORAGE_BUFFERS - 1)
            bgl = b._device.create_bind_group_layout(entries=[
                {"binding": i, "visibility": b._wgpu.ShaderStage.COMPUTE, "buffer": {"type": t}}
                for i, t in enumerate(types)])
            self._layout = (bgl, b._device.create_pipeline_layout(bind_group_layouts=[bgl]), b._device)
            self._pipelines.clear()
            self._module = None
        return self._layout

    def _pipeline(self, entry: str, p: dict):
        consts = {wgsl: p[name] for name, wgsl in OVERRIDES.items()}
        key = (entry, tuple(sorted(consts.items())))
        if key not in self._pipelines:
            dev = self.backend._device
            try:
                if self._module is None:
                    self._module = dev.create_shader_module(code=shaders.read(SOURCE))
                self._pipelines[key] = dev.create_compute_pipeline(
                    layout=self._bind_layout()[1],
                    compute={"module": self._module, "entry_point": entry, "constants": consts})
            except Exception as e:
                raise KernelError(f"pipeline {entry} {consts} failed to build: {e}") from None
        return self._pipelines[key]

    def plan(self, x: np.ndarray, k: int, params: dict | None = None):
        """(passes, bind group, buffers) of one call: passes as WgpuBackend._encode takes them; buffers[6] and [7]
        hold the values' bits and the columns, [rows, k]."""
        b = self.backend
        b._ensure()
        self._bind_layout()
        rows, cols = x.shape
        p = plan_shape(rows, cols, k, params)
        u = b._wgpu.BufferUsage
        uni = np.array([rows, cols, k, p["nchunks"], p["nseg"], 0, 0, 0], dtype=np.uint32)
        state = np.tile(np.array([0, k, 0, 0], dtype=np.uint32), rows)   # prefix, need, rounds done, done
        bufs = [b._buffer(uni, usage=u.UNIFORM),
                b._buffer(np.ascontiguousarray(x), usage=u.STORAGE),
                b._buffer(size=rows * p["bins"] * 4, usage=u.STORAGE),      # zeroed by WebGPU at creation
                b._buffer(state, usage=u.STORAGE),
                b._buffer(size=rows * p["nchunks"] * 8, usage=u.STORAGE),
                b._buffer(size=rows * k * 8, usage=u.STORAGE),
                b._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC),
                b._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC)]
        bg = b._device.create_bind_group(layout=self._layout[0], entries=[
            {"binding": i, "resource": {"buffer": buf}} for i, buf in enumerate(bufs)])
        passes = [(self._pipeline(entry, p), groups) for entry, groups in chain(p, rows, k)]
        return passes, bg, bufs

    def topk2d(self, x, k, params=None):
        """Largest k per row, sorted descending, ties to the lower index, NaN largest: (values, int64 indices)."""
        x = check_topk_args(x, k)
        b = self.backend
        with b._lock:
            passes, bg, bufs = self.plan(x, k, params)
            try:
                enc = b._device.create_command_encoder()
                b._encode(enc, passes, bg)
                b._device.queue.submit([enc.finish()])
                rows = x.shape[0]
                vals = np.frombuffer(b._device.queue.read_buffer(bufs[6]), dtype=np.float32)[: rows * k]
                idx = np.frombuffer(b._device.queue.read_buffer(bufs[7]), dtype=np.uint32)[: rows * k]
                return vals.reshape(rows, k).copy(), idx.reshape(rows, k).astype(np.int64)
            finally:
                for buf in bufs:
                    buf.destroy()

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1) -> Timing:
        """GPU time of one call's dispatch chain, as WgpuBackend.time_topk2d times the other pipelines (timestamps and
        the clock guard where the device has them, else the wall clock)."""
        x = check_topk_args(x, k)
        b = self.backend
        with b._lock:
            passes, bg, bufs = self.plan(x, k, params)
            try:
                return b._timed_submit(passes, bg, repeats, warmups)
            finally:
                for buf in bufs:
                    buf.destroy()
