"""TopK's radix pipeline on wgpu-py (shaders/topk_radix.wgsl: each row spread over chunks of columns, a radix select
of the k-th largest key in rounds of RB bits, a filter, a segmented sort): the plan of one call on a WgpuBackend's
device, its buffers, bind group and dispatch chain.

WgpuBackend.topk2d and time_topk2d run a configuration of the search space with radix = true through it (the
override constants from space.json topk.radix, SEG derived from k). RadixTopK runs the kernel's override constants
as given, in lower case (wg, ch, rb, kl, seg): the tests reach chunk, segment and tile sizes there that the space
does not, and bench/radix_probe.py sweeps them.

    from spiraltorch_tuner.wgpu_radix import RadixTopK
    values, indices = RadixTopK().topk2d(x, k, {"ch": 2048, "rb": 8})   # same answer as cpu.topk_reference
"""
from __future__ import annotations

import numpy as np

from . import registry
from .backend import Timing, check_topk_args
from .errors import ParamsError
from .shaders import overrides, space
from .space import next_pow2, radix_seg, radix_sizes, radix_workgroup_bytes

# The kernel's override constants (lower case here) and RadixTopK's values for those not given. wg: invocations per
# workgroup; ch: columns per chunk (one workgroup of the histogram and filter passes); rb: key bits per round
# of the select; kl: consecutive columns per invocation in the filter's tie scan; seg: pairs per workgroup of the
# segmented sort (lowered to k's power of two).
DEFAULTS = {"wg": 256, "ch": 4096, "rb": 11, "kl": 4, "seg": 1024}

# WebGPU's default limits: what RadixTopK checks against, so every configuration it accepts runs on any adapter.
DEFAULT_LIMITS = {"maxComputeWorkgroupStorageSize": 16384, "maxComputeInvocationsPerWorkgroup": 256,
                  "maxComputeWorkgroupsPerDimension": 65535}
STORAGE_BUFFERS = 7     # and one uniform: within WebGPU's default maxStorageBuffersPerShaderStage (8)
LAYOUT = "topk_radix"   # WgpuBackend._layout's name for the bind group layout of these bindings
UNIFORM_BYTES = 32      # the kernel's Shape
UNIFORM_STRIDE = 256    # between the uniform's copies: WebGPU's largest minUniformBufferOffsetAlignment, so any
                        # adapter takes the offsets


def _pow2(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def constants(shape: dict, params: dict) -> dict:
    """The kernel constants (lower case) of a search-space configuration with radix = true: its overrides by
    space.json topk.radix (wg, kl, rch -> CH, rb) and SEG derived from k (space.radix_seg)."""
    c = {name.lower(): v for name, v in overrides("topk", {**params, "radix": True}).items()}
    return {**c, "seg": radix_seg(shape["k"])}


def plan_shape(rows: int, cols: int, k: int, params: dict | None = None, limits: dict | None = None) -> dict:
    """The kernel constants for a shape (DEFAULTS updated by `params`, seg lowered to k's power of two) with the
    derived counts, or ParamsError saying which rule or limit of `limits` (default: WebGPU's defaults) it breaks."""
    lim = {**DEFAULT_LIMITS, **(limits or {})}
    p = dict(DEFAULTS)
    if params:
        unknown = set(params) - set(p)
        if unknown:
            raise ParamsError(f"unknown radix TopK constants {sorted(unknown)}; allowed: {sorted(p)}")
        p.update({n: int(v) for n, v in params.items()})
    p["seg"] = min(p["seg"], max(2, next_pow2(k)))
    bad = []
    wmax = int(lim["maxComputeInvocationsPerWorkgroup"])
    if not (_pow2(p["wg"]) and 32 <= p["wg"] <= wmax):
        bad.append(f"wg={p['wg']} must be a power of two in 32..{wmax}")
    if p["rb"] < 4:
        bad.append(f"rb={p['rb']} must be >= 4 (and 2^rb bins fit in workgroup memory)")
    if not _pow2(p["seg"]):
        bad.append(f"seg={p['seg']} must be a power of two")
    if p["ch"] < p["wg"] or p["kl"] < 1:
        bad.append(f"ch={p['ch']} must be >= wg and kl={p['kl']} >= 1")
    nchunks = -(-cols // max(1, p["ch"]))
    gmax = int(lim["maxComputeWorkgroupsPerDimension"])
    if rows > gmax or nchunks > gmax:
        bad.append(f"rows={rows} and chunks per row={nchunks} must be <= {gmax}")
    smax = int(lim["maxComputeWorkgroupStorageSize"])
    for entry, nbytes in radix_workgroup_bytes(p["wg"], p["rb"], p["seg"]).items():
        if nbytes > smax:
            what = {"radix_hist": f"rb={p['rb']}", "radix_segsort": f"seg={p['seg']}"}.get(entry, f"wg={p['wg']}")
            bad.append(f"{what}: {entry} needs {nbytes} bytes of workgroup memory, over {smax}")
    if bad:
        raise ParamsError(f"radix TopK configuration {p} is not legal for {rows}x{cols} k={k}: {'; '.join(bad)}")
    return {**p, **radix_sizes(cols, k, p["ch"], p["rb"], p["seg"])}


def chain(p: dict, rows: int, k: int) -> list[tuple[str, tuple[int, int, int], dict]]:
    """The dispatches of one call, (entry point, workgroups, the pass's own values: a histogram pass's round), for
    constants from plan_shape: a histogram pass per round, the filter, the sort and, with more than one segment,
    the rank pass (else radix_segsort writes the output)."""
    per_row = (p["nchunks"], rows, 1)
    rank = [("radix_rank", (-(-k // p["wg"]), rows, 1), {})] if p["nseg"] > 1 else []
    return ([("radix_hist", per_row, {"round": r}) for r in range(p["rounds"])]
            + [("radix_filter", per_row, {}), ("radix_segsort", (p["nseg"], rows, 1), {})] + rank)


def pass_name(entry: str, own: dict) -> str:
    """A pass's name in logs: its entry point, and the round of a histogram pass (radix_hist0, radix_hist1, ...)."""
    return f"{entry}{own['round']}" if "round" in own else entry


def plan(backend, x: np.ndarray, k: int, p: dict):
    """(passes, bind group, buffers) of one call with constants `p` from plan_shape, on `backend`'s device (its
    pipeline cache and buffer helpers): passes as WgpuBackend._encode takes them; the last two buffers hold the
    values' bits and the columns, [rows, k], as in WgpuBackend._topk_plan."""
    b = backend
    rows, cols = x.shape
    u = b._wgpu.BufferUsage
    hwords = p["hwords"]
    # The uniform once per round, UNIFORM_STRIDE bytes apart, each naming its round: radix_hist's pass of round r
    # binds copy r (a bind group of its own), every other pass copy 0
    uni = np.zeros((p["rounds"], UNIFORM_STRIDE // 4), dtype=np.uint32)
    uni[:, :6] = [rows, cols, k, p["nchunks"], p["nseg"], hwords]
    uni[:, 6] = np.arange(p["rounds"])
    # WebGPU zeroes a buffer at creation: the histograms and counters start at zero, radix_segsort clears them for
    # the next call; each state slot is written in a call before it is read. COPY_SRC: the tests read them
    scratch = u.STORAGE | u.COPY_SRC
    bufs = [b._buffer(uni, usage=u.UNIFORM | u.COPY_SRC),
            b._buffer(np.ascontiguousarray(x), usage=u.STORAGE, align=16),      # read as vec4<u32>
            b._buffer(size=(rows * hwords + rows) * 4, usage=scratch),                # histograms, counters
            b._buffer(size=rows * p["rounds"] * 16, usage=scratch),                   # state slots
            b._buffer(size=rows * p["nchunks"] * p["last_bins"] * 4, usage=scratch),  # last round per chunk
            b._buffer(size=rows * k * 8, usage=u.STORAGE),
            b._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC),
            b._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC)]
    bgs = [b._device.create_bind_group(layout=b._layout(LAYOUT)[0], entries=[
        {"binding": 0, "resource": {"buffer": bufs[0], "offset": r * UNIFORM_STRIDE, "size": UNIFORM_BYTES}}] + [
        {"binding": i, "resource": {"buffer": buf}} for i, buf in enumerate(bufs) if i]) for r in range(p["rounds"])]
    passes = [(b._pipeline("topk", entry, {"radix": True}, entry_constants(entry, p)), groups)
              + ((bgs[own["round"]],) if "round" in own else ())
              for entry, groups, own in chain(p, rows, k)]
    return passes, bgs[0], bufs


def entry_constants(entry: str, p: dict) -> dict:
    """The override constants (WGSL names) an entry point's pipeline is built with: those it uses (space.json
    topk.radix.entry_constants), so the passes of configurations that differ only in others share a pipeline."""
    return {name: p[name.lower()] for name in space()["topk"]["radix"]["entry_constants"][entry]}


class RadixTopK:
    """The radix pipeline with its kernel constants as given (lower case: wg, ch, rb, kl, seg), checked against
    WebGPU's default limits, on a WgpuBackend's device (the package's wgpu backend when none is given)."""

    def __init__(self, backend=None):
        self.backend = backend if backend is not None else registry.get("wgpu")

    def plan(self, x: np.ndarray, k: int, params: dict | None = None):
        """(passes, bind group, buffers) of one call (see plan)."""
        self.backend._ensure()
        rows, cols = x.shape
        return plan(self.backend, x, k, plan_shape(rows, cols, k, params))

    def topk2d(self, x, k, params=None, sorted=True):     # sorted=False: returned sorted all the same
        """Largest k per row, sorted descending, ties to the lower index, NaN largest: (values, int64 indices)."""
        x = check_topk_args(x, k)
        with self.backend._lock:
            return self.backend._topk_run(x, k, *self.plan(x, k, params))

    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        """GPU time of one call's dispatch chain, as WgpuBackend.time_topk2d times every TopK pipeline."""
        x = check_topk_args(x, k)
        with self.backend._lock:
            return self.backend._topk_time(*self.plan(x, k, params), repeats, warmups)
