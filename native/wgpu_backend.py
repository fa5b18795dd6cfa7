"""wgpu-py backend: the very WGSL files the browser runs (shaders/), with the same override constants.

Steps mirror static/gpu.js: request adapter and device (timestamp-query and subgroups when the adapter has them,
limits raised to the adapter's), one explicit bind group layout per kernel, pipelines cached per configuration.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import statistics
import threading
import time

import numpy as np

from . import shaders, wgpu_radix
from .backend import Timing, check_topk_args, check_where_args
from .errors import BackendUnavailable, KernelError, ParamsError, SpiralTorchError
from .space import default_params, derived, next_pow2, sort_cap, violations

NAME = "wgpu"

# WebGPU limit names (camelCase, as in the browser and space.json) and their wgpu-py spelling.
_LIMITS = {
    "maxComputeInvocationsPerWorkgroup": "max-compute-invocations-per-workgroup",
    "maxComputeWorkgroupSizeX": "max-compute-workgroup-size-x",
    "maxComputeWorkgroupStorageSize": "max-compute-workgroup-storage-size",
    "maxComputeWorkgroupsPerDimension": "max-compute-workgroups-per-dimension",
    "maxStorageBufferBindingSize": "max-storage-buffer-binding-size",
    "maxBufferSize": "max-buffer-size",
}


# Timing (see WgpuBackend._timed_submit): GPU time of warm-up before the samples, the least GPU time of one sample,
# and the most dispatch chains encoded in one submission.
WARM_MS = 30.0
SAMPLE_MS = 0.5
MAX_CHAINS = 2048
CANARY = shaders.space()["canary"]


def _dims(groups: int, max_dim: int) -> tuple[int, int]:
    """Split a 1-d workgroup count over x and y, as the kernels expect (id = x + y * num_workgroups.x)."""
    x = min(groups, max_dim)
    return x, -(-groups // x)


def _device_faults(method):
    """A failure of the device inside `method` (wgpu's GPUError: the device lost, out of memory, a validation error)
    as KernelError naming the cause. The device is let go, so the next call makes a new one: the browser tuner does
    the same after a loss (static/tuner.js recover)."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except SpiralTorchError:
            raise
        except Exception as e:
            wgpu = getattr(self, "_wgpu", None)
            if wgpu is None or not isinstance(e, wgpu.GPUError):
                raise
            why = " ".join(str(e).split()) or type(e).__name__
            self._drop_device()
            what = "was lost" if _is_loss(e) else "failed"
            raise KernelError(f"the wgpu device {what} ({type(e).__name__}: {why}); the next call makes a new "
                              "device") from None
    return guarded


def _is_loss(e: Exception) -> bool:
    """Whether a wgpu error says the device is gone (wgpu-py 0.32 has no synchronous `device.lost`; every call on a
    lost device fails with wgpu-native's "Parent device is lost")."""
    return "device is lost" in str(e).lower() or "device lost" in str(e).lower()


ADAPTER_ENV = "SPIRALTORCH_WGPU_ADAPTER"


class AdapterChoiceError(LookupError):
    """SPIRALTORCH_WGPU_ADAPTER names no adapter there is."""


def adapter_text(info) -> str:
    """An adapter as pick_adapter matches and names it: "NVIDIA H200 (NVIDIA, Vulkan, DiscreteGPU)"."""
    i = dict(info)
    tags = ", ".join(str(i[k]) for k in ("vendor", "backend_type", "adapter_type") if i.get(k))
    return f"{i.get('device') or i.get('description') or '?'} ({tags})"


def pick_adapter(adapters, choice: str):
    """The adapter SPIRALTORCH_WGPU_ADAPTER names among `adapters` (wgpu's enumerate_adapters order): an index, or
    text found (case aside) in its device, description, vendor or backend, the first that has it. Raises
    AdapterChoiceError listing them."""
    texts = [adapter_text(a.info) + " " + str(dict(a.info).get("description", "")) for a in adapters]
    if choice.isdigit() and int(choice) < len(adapters):
        return adapters[int(choice)]
    if not choice.isdigit():
        for a, t in zip(adapters, texts):
            if choice.lower() in t.lower():
                return a
    there = "; ".join(f"{n}: {adapter_text(a.info)}" for n, a in enumerate(adapters)) or "none"
    raise AdapterChoiceError(f"{ADAPTER_ENV}={choice!r} names no adapter here (an index, or text of one's name); "
                             f"the adapters: {there}")


class WgpuBackend:
    name = NAME

    def __init__(self, power_preference: str = "high-performance", clock_guard: bool | None = None):
        """clock_guard: time the clock canary beside every measurement (None: on GPU adapters with timestamps,
        off on CPU adapters, whose timing noise is larger than the clock steps it detects)."""
        self._power = power_preference
        self._guard = clock_guard
        self._canary_best = None
        self._canary_bg = None
        self._lock = threading.RLock()
        self._device = None
        self._error = None
        self._pipelines: dict = {}
        self._layouts: dict = {}
        self.subgroup_sizes: list[int] = []

    # -- adapter and device -------------------------------------------------------------------------------
    def _ensure(self):
        with self._lock:
            if self._device is not None or self._error is not None:
                if self._error is not None:
                    raise BackendUnavailable(self._error)
                return self._device
            os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
            try:
                import wgpu
            except ImportError as e:
                self._error = f"wgpu-py is not installed ({e}); pip install wgpu"
                raise BackendUnavailable(self._error) from None
            choice = os.environ.get(ADAPTER_ENV, "").strip()
            try:
                if choice:
                    adapter = pick_adapter(wgpu.gpu.enumerate_adapters_sync(), choice)
                else:
                    adapter = wgpu.gpu.request_adapter_sync(power_preference=self._power)
            except AdapterChoiceError as e:
                self._error = str(e)
                raise BackendUnavailable(self._error) from None
            except Exception as e:  # wgpu raises plain RuntimeError when no Vulkan/Metal/D3D12 driver is present
                adapter = None
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            else:
                reason = "no adapter"
            if adapter is None:
                self._error = (f"no WebGPU adapter ({reason}); on Linux without a GPU install mesa-vulkan-drivers "
                               "for lavapipe")
                raise BackendUnavailable(self._error)
            feats = [f for f in ("timestamp-query", "subgroup") if f in adapter.features]
            limits = {v: adapter.limits[v] for v in _LIMITS.values() if v in adapter.limits}
            self._wgpu = wgpu
            self._adapter = adapter
            self._device = adapter.request_device_sync(required_features=feats, required_limits=limits)
            self.features = {"timestamp-query" if f == "timestamp-query" else "subgroups" for f in feats}
            self.limits = {camel: limits[dash] for camel, dash in _LIMITS.items() if dash in limits}
            self.subgroup_sizes = self._probe_subgroup_sizes() if "subgroups" in self.features else []
            return self._device

    def _drop_device(self):
        """Forget the device and everything made on it; _ensure makes a new one on the next call."""
        with self._lock:
            self._device = None
            self._pipelines.clear()
            self._layouts.clear()
            self._fence = self._canary_bg = self._canary_best = None

    def lose_device(self):
        """Destroy the device, as a driver reset or a GPU falling off the bus would (tests of the recovery; the page
        has window.__tuner.loseDevice)."""
        with self._lock:
            self._ensure().destroy()

    def _probe_subgroup_sizes(self) -> list[int]:
        """[smallest, largest] subgroup size seen by shaders/subgroup_probe.wgsl at workgroup sizes 32..1024 (wgpu-py
        reports no subgroup sizes: its adapter info holds the WebGPU spec's defaults, 4 and 128); [] if it fails."""
        wgpu, dev = self._wgpu, self._device
        try:
            module = dev.create_shader_module(code=shaders.read("subgroup_probe.wgsl"))
            buf = dev.create_buffer_with_data(data=np.array([0xFFFFFFFF, 0], dtype=np.uint32),
                                              usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
            enc = dev.create_command_encoder()
            cap = self.limits.get("maxComputeInvocationsPerWorkgroup", 256)
            for wg in (w for w in (32, 64, 256, 1024) if w <= cap):
                pipe = dev.create_compute_pipeline(layout="auto", compute={
                    "module": module, "entry_point": "probe", "constants": {"WG": wg}})
                bg = dev.create_bind_group(layout=pipe.get_bind_group_layout(0),
                                           entries=[{"binding": 0, "resource": {"buffer": buf}}])
                cp = enc.begin_compute_pass()
                cp.set_pipeline(pipe)
                cp.set_bind_group(0, bg)
                cp.dispatch_workgroups(2, 1, 1)
                cp.end()
            dev.queue.submit([enc.finish()])
            lo, hi = (int(v) for v in np.frombuffer(dev.queue.read_buffer(buf), dtype=np.uint32))
            buf.destroy()
        except Exception:  # a driver without the builtin: the run then names no subgroup sizes, as before
            return []
        return [lo, hi] if 0 < lo <= hi else []

    def available(self) -> tuple[bool, str]:
        try:
            self._ensure()
            return True, ""
        except BackendUnavailable as e:
            return False, str(e)

    def info(self) -> dict:
        self._ensure()
        ai = self._adapter.info
        return {"name": NAME, "vendor": ai.get("vendor", ""), "architecture": ai.get("architecture", ""),
                "device": ai.get("device", ""), "description": ai.get("description", ""),
                "backend": ai.get("backend_type", ""), "adapter_type": ai.get("adapter_type", ""),
                "features": sorted(self.features), "limits": self.limits,
                "subgroup_sizes": list(self.subgroup_sizes),
                "timer": "timestamp" if "timestamp-query" in self.features else "wall"}

    # -- pipelines ----------------------------------------------------------------------------------------
    def _layout(self, kernel: str):
        if kernel not in self._layouts:
            bt = self._wgpu.BufferBindingType
            ro = bt.read_only_storage
            types = {"topk": [bt.uniform, ro, bt.storage, bt.storage, bt.storage],
                     wgpu_radix.LAYOUT: [bt.uniform, ro] + [bt.storage] * (wgpu_radix.STORAGE_BUFFERS - 1),
                     "where_nd": [bt.uniform, ro, ro, ro, bt.storage],
                     "canary": [bt.storage]}[kernel]
            entries = [{"binding": i, "visibility": self._wgpu.ShaderStage.COMPUTE, "buffer": {"type": t}}
                       for i, t in enumerate(types)]
            bgl = self._device.create_bind_group_layout(entries=entries)
            self._layouts[kernel] = (bgl, self._device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return self._layouts[kernel]

    def _pipeline(self, kernel: str, entry: str, params: dict, derived_consts: dict | None = None):
        consts = {**shaders.overrides(kernel, params), **(derived_consts or {})}
        layout = wgpu_radix.LAYOUT if shaders.is_radix(kernel, params) else kernel
        key = (layout, entry, bool(params.get("sg", False)), tuple(sorted(consts.items())))
        if key not in self._pipelines:
            try:
                module = self._device.create_shader_module(code=shaders.module_source(kernel, params))
                self._pipelines[key] = self._device.create_compute_pipeline(
                    layout=self._layout(layout)[1],
                    compute={"module": module, "entry_point": entry, "constants": consts})
            except Exception as e:
                if _is_loss(e):     # the device, not this pipeline: _device_faults replaces the device
                    raise
                raise KernelError(f"pipeline {entry} {params} failed to build: {e}") from None
        return self._pipelines[key]

    @staticmethod
    def fixed_default(kernel: str, query: tuple) -> dict:
        """The configuration of params="default": space.json's default for the kernel."""
        return default_params(kernel)

    def _check_params(self, kernel: str, shape: dict, params: dict | None) -> dict:
        p = default_params(kernel)
        if params:
            unknown = set(params) - set(p)
            if unknown:
                raise ParamsError(f"unknown {kernel} parameters {sorted(unknown)}; allowed: {sorted(p)}")
            p.update(params)
        if kernel == "topk" and p["use_2ce"] and not p["ch"]:
            p["ch"] = max(1024, next_pow2(shape["k"]))
        bad = violations(kernel, shape, p, self.limits, self.features)
        if bad:
            raise ParamsError(f"{kernel} configuration {p} is not legal for shape {shape} on this adapter: "
                              f"breaks {', '.join(bad)}")
        return p

    def _buffer(self, data=None, size=None, usage=0, align=4):
        """A buffer of `data` or of `size` bytes, its size rounded up to `align` (where_nd binds every buffer as
        array<vec4<u32>>: 16) and the tail zero-padded."""
        u = self._wgpu.BufferUsage
        self._check_size(data.nbytes if data is not None else size, bool(usage & u.STORAGE))
        if data is not None:
            mv = memoryview(data).cast("B")
            size = max(align, -(-mv.nbytes // align) * align)
            buf = self._device.create_buffer(size=size, usage=usage | u.COPY_DST)
            if mv.nbytes % 4:
                tail = bytearray(4 - mv.nbytes % 4)
                head = mv.nbytes - mv.nbytes % 4
                if head:
                    self._device.queue.write_buffer(buf, 0, mv[:head])
                self._device.queue.write_buffer(buf, head, bytes(mv[head:]) + bytes(tail))
            elif mv.nbytes:
                self._device.queue.write_buffer(buf, 0, mv)
            return buf
        return self._device.create_buffer(size=max(align, -(-size // align) * align), usage=usage)

    def _check_size(self, nbytes: int, storage: bool):
        """KernelError naming the limit when a buffer of `nbytes` is over what this device allows (WebGPU would
        answer with a validation error, or the driver run out of memory)."""
        for name in ("maxStorageBufferBindingSize",) * storage + ("maxBufferSize",):
            limit = self.limits.get(name)
            if limit is not None and nbytes > limit:
                raise KernelError(f"the request needs a buffer of {nbytes:,} bytes; this device "
                                  f"({self._adapter.info.get('description', '') or 'wgpu'}) allows at most {limit:,} "
                                  f"({name}): make the input smaller or use another device")

    def _sync(self):
        """Wait until the queue is idle. (wgpu-py 0.32's on_submitted_work_done_sync fails in its cffi callback,
        so read back a 4-byte buffer instead: the copy runs after all earlier submissions.)"""
        if getattr(self, "_fence", None) is None:
            u = self._wgpu.BufferUsage
            self._fence = self._device.create_buffer(size=4, usage=u.COPY_SRC | u.COPY_DST)
        self._device.queue.read_buffer(self._fence)

    def _encode(self, enc, passes, bg, chains: int = 1, qs=None, begin: int | None = None, end: int | None = None):
        """Encode `chains` back-to-back copies of a dispatch chain (`passes`: [(pipeline, workgroups)], or with a bind
        group of the pass's own instead of `bg` as a third item) in one compute pass; with a query set, a timestamp
        at the beginning of the pass (index `begin`) and at its end (`end`).
        (WebGPU makes each dispatch's storage writes visible to the next one in the same pass. A pass of its own per
        dispatch measured about 6 us more per dispatch on the H100 through Vulkan: bench/results/
        h100-2026-11-25-s4-experiments.txt, run 5.)"""
        tw = {}
        if qs is not None and begin is not None:
            tw["beginning_of_pass_write_index"] = begin
        if qs is not None and end is not None:
            tw["end_of_pass_write_index"] = end
        cp = enc.begin_compute_pass(timestamp_writes={"query_set": qs, **tw} if tw else None)
        for _ in range(chains):
            for pipe, groups, *own in passes:
                cp.set_pipeline(pipe)
                cp.set_bind_group(0, own[0] if own else bg)
                cp.dispatch_workgroups(*groups)
        cp.end()

    def _intervals_ms(self, enc, qs, resolve, pairs: int) -> list[float]:
        """Resolve timestamp pairs 0..pairs-1 of `enc`'s query set into `resolve`, submit, wait, and return each
        pair's interval in ms (static/timing.js Timer.intervals)."""
        enc.resolve_query_set(qs, 0, 2 * pairs, resolve, 0)
        self._device.queue.submit([enc.finish()])
        t = np.frombuffer(self._device.queue.read_buffer(resolve, 0, 16 * pairs), dtype=np.uint64).reshape(-1, 2)
        return [float(b - a) / 1e6 for a, b in t]

    def _timed_submit(self, passes, bg, repeats: int, warmups: int) -> Timing:
        """GPU time of one dispatch chain, from timestamps when the device has them (else the wall clock).

        The GPU is kept busy while it is measured: a discrete GPU's driver lowers the clock when the GPU looks idle
        (measured on the H100: 1980 -> 345 MHz a few seconds into a tuning run whose kernels ran between host round
        trips, every later time 3-5x too high; bench/drift_probe.py). So after one estimate, warm-up chains worth
        WARM_MS of GPU time and all `repeats` samples go in one submission, back to back; each sample is `chains`
        copies between one timestamp pair, enough for SAMPLE_MS of GPU time, divided by `chains`."""
        dev = self._device
        u = self._wgpu.BufferUsage
        n = max(1, repeats)
        if "timestamp-query" not in self.features:
            for _ in range(warmups):
                enc = dev.create_command_encoder()
                self._encode(enc, passes, bg)
                dev.queue.submit([enc.finish()])
            self._sync()
            samples = []
            for _ in range(n):
                enc = dev.create_command_encoder()
                self._encode(enc, passes, bg)
                t0 = time.perf_counter()
                dev.queue.submit([enc.finish()])
                self._sync()
                samples.append((time.perf_counter() - t0) * 1e3)
            return Timing.of("wall", samples)
        best = self._clock_guard()
        canary = self._canary_pass(CANARY["iters"]) if best else None
        qs = dev.create_query_set(type="timestamp", count=2 * n + 4)
        resolve = dev.create_buffer(size=16 * n + 32, usage=u.QUERY_RESOLVE | u.COPY_SRC)
        try:
            enc = dev.create_command_encoder()
            self._encode(enc, passes, bg, chains=max(0, warmups))
            self._encode(enc, passes, bg, 1, qs, 0, 1)
            est = max(self._intervals_ms(enc, qs, resolve, 1)[0], 1e-4)
            chains = max(1, min(MAX_CHAINS // n, math.ceil(SAMPLE_MS / est)))
            warm = min(MAX_CHAINS, math.ceil(WARM_MS / est))
            attempts = CANARY["retries"] + 1 if best else 1
            for attempt in range(attempts):
                enc = dev.create_command_encoder()
                self._encode(enc, passes, bg, warm)
                if canary:      # one canary right before the samples and one right after them
                    self._encode(enc, [canary], self._canary_bg, 1, qs, 2 * n, 2 * n + 1)
                for i in range(n):
                    self._encode(enc, passes, bg, chains, qs, 2 * i, 2 * i + 1)
                if canary:
                    self._encode(enc, [canary], self._canary_bg, 1, qs, 2 * n + 2, 2 * n + 3)
                t = self._intervals_ms(enc, qs, resolve, n + (2 if canary else 0))
                samples = [d / chains for d in t[:n]]
                if not canary:
                    return Timing.of("timestamp", samples, chains=chains)
                c = max(t[n:n + 2])
                self._canary_best = best = min(best, c)
                clock = c / best
                if clock <= CANARY["tolerance"] or attempt == attempts - 1:
                    break
                self._load(CANARY["ramp_max_ms"], until_clock=True)
        finally:
            resolve.destroy()
            qs.destroy()
        return Timing.of("timestamp", samples, chains=chains, clock=clock)

    # -- clock canary -------------------------------------------------------------------------------------
    def _canary_pass(self, iters: int):
        """(pipeline, workgroups) of shaders/canary.wgsl with ITERS = iters."""
        key = ("canary", iters)
        if key not in self._pipelines:
            module = self._device.create_shader_module(code=shaders.read(CANARY["source"]))
            self._pipelines[key] = self._device.create_compute_pipeline(
                layout=self._layout("canary")[1],
                compute={"module": module, "entry_point": CANARY["entry_point"],
                         "constants": {"WG": CANARY["wg"], "ITERS": iters}})
        if self._canary_bg is None:
            sink = self._device.create_buffer(size=16, usage=self._wgpu.BufferUsage.STORAGE)
            self._canary_bg = self._device.create_bind_group(
                layout=self._layout("canary")[0], entries=[{"binding": 0, "resource": {"buffer": sink}}])
        return self._pipelines[key], (CANARY["groups"], 1, 1)

    def _canary_ms(self, count: int = 1) -> list[float]:
        """Times of `count` canaries back to back in one submission."""
        dev, u = self._device, self._wgpu.BufferUsage
        qs = dev.create_query_set(type="timestamp", count=2 * count)
        res = dev.create_buffer(size=16 * count, usage=u.QUERY_RESOLVE | u.COPY_SRC)
        enc = dev.create_command_encoder()
        for i in range(count):
            self._encode(enc, [self._canary_pass(CANARY["iters"])], self._canary_bg, 1, qs, 2 * i, 2 * i + 1)
        try:
            return self._intervals_ms(enc, qs, res, count)
        finally:
            res.destroy()
            qs.destroy()

    def _load(self, ms: float, until_clock: bool = False):
        """Keep the GPU busy with the canary's heavy variant for `ms` of wall time (with until_clock: in steps of
        ramp_ms, stopping as soon as the canary is back within tolerance of its best time)."""
        load = self._canary_pass(CANARY["load_iters"])
        t0, n = time.perf_counter(), 1
        step_end = t0
        while time.perf_counter() - t0 < ms / 1e3:
            t1 = time.perf_counter()
            enc = self._device.create_command_encoder()
            self._encode(enc, [load], self._canary_bg, n)
            self._device.queue.submit([enc.finish()])
            self._sync()
            dt = time.perf_counter() - t1
            n = max(1, min(MAX_CHAINS, int(n * 0.02 / max(dt, 1e-5))))    # ~20 ms per submission
            if until_clock and time.perf_counter() >= step_end:
                step_end = time.perf_counter() + CANARY["ramp_ms"] / 1e3
                if min(self._canary_ms(3)) <= CANARY["tolerance"] * self._canary_best:
                    return

    def _clock_guard(self) -> float | None:
        """The canary's best time in ms, calibrated on first use (the GPU loaded for calibrate_ms, then 9 canaries
        timed), or None where the guard is off."""
        if self._canary_best is None:
            on = self._guard
            if on is None:
                on = ("timestamp-query" in self.features
                      and str(self._adapter.info.get("adapter_type", "")).lower() != "cpu")
            if not on:
                self._canary_best = 0.0
            else:
                self._load(CANARY["calibrate_ms"])
                self._canary_best = statistics.median(self._canary_ms(9))
        return self._canary_best or None


    # -- TopK ---------------------------------------------------------------------------------------------
    def _topk_plan(self, x: np.ndarray, k: int, params: dict | None):
        """(passes, bind group, buffers) of one call of a configuration, for 1CE, 2CE and the radix pipeline
        (wgpu_radix) alike; the last two buffers hold the values' bits and the columns, [rows, k]."""
        self._ensure()
        rows, cols = x.shape
        shape = {"rows": rows, "cols": cols, "k": int(k)}
        p = self._check_params("topk", shape, params)
        if p.get("radix"):
            consts = wgpu_radix.plan_shape(rows, cols, int(k), wgpu_radix.constants(shape, p), self.limits)
            return wgpu_radix.plan(self, x, int(k), consts)
        d = derived("topk", shape, p)
        u = self._wgpu.BufferUsage
        uni = np.array([rows, cols, k, d["kp"], d["nchunks"], 0, 0, 0], dtype=np.uint32)
        bufs = [self._buffer(uni, usage=u.UNIFORM),
                self._buffer(np.ascontiguousarray(x), usage=u.STORAGE),
                self._buffer(size=d["scratch_bytes"], usage=u.STORAGE),
                self._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC),
                self._buffer(size=rows * k * 4, usage=u.STORAGE | u.COPY_SRC)]
        bgl, _ = self._layout("topk")
        bg = self._device.create_bind_group(layout=bgl, entries=[
            {"binding": i, "resource": {"buffer": b}} for i, b in enumerate(bufs)])
        sc = {"SORT_CAP": sort_cap(d["kp"], p["wg"], self.limits, p.get("ls", True))}
        if p["use_2ce"]:
            passes = [(self._pipeline("topk", "topk_chunks", p, sc), (d["nchunks"], rows, 1)),
                      (self._pipeline("topk", "topk_merge", p, sc), (d["merge_groups"], rows, 1))]
        else:
            passes = [(self._pipeline("topk", "topk_1ce", p, sc), (rows, 1, 1))]

        return passes, bg, bufs

    @_device_faults
    def topk2d(self, x, k, params=None, sorted=True):     # sorted=False: returned sorted all the same
        x = check_topk_args(x, k)
        with self._lock:
            return self._topk_run(x, k, *self._topk_plan(x, k, params))

    @_device_faults
    def time_topk2d(self, x, k, params=None, repeats=5, warmups=1, sorted=True) -> Timing:
        x = check_topk_args(x, k)
        with self._lock:
            return self._topk_time(*self._topk_plan(x, k, params), repeats, warmups)

    def _topk_run(self, x, k, passes, bg, bufs):
        """One call of a plan: (values, int64 indices) from its last two buffers; the plan's buffers destroyed."""
        try:
            enc = self._device.create_command_encoder()
            self._encode(enc, passes, bg)
            self._device.queue.submit([enc.finish()])
            rows = x.shape[0]
            vals = np.frombuffer(self._device.queue.read_buffer(bufs[-2]), dtype=np.float32)[: rows * k]
            idx = np.frombuffer(self._device.queue.read_buffer(bufs[-1]), dtype=np.uint32)[: rows * k]
            return vals.reshape(rows, k).copy(), idx.reshape(rows, k).astype(np.int64)
        finally:
            for b in bufs:
                b.destroy()

    def _topk_time(self, passes, bg, bufs, repeats, warmups) -> Timing:
        """A plan's dispatch chain timed (_timed_submit); the plan's buffers destroyed."""
        try:
            return self._timed_submit(passes, bg, repeats, warmups)
        finally:
            for b in bufs:
                b.destroy()

    # -- where_nd -----------------------------------------------------------------------------------------
    @_device_faults
    def where_nd(self, cond, x, y, params=None):
        cond, x, y = check_where_args(cond, x, y)
        with self._lock:
            out, _ = self._where_run(cond, x, y, params, repeats=0, warmups=0)
            return out

    @_device_faults
    def time_where_nd(self, cond, x, y, params=None, repeats=5, warmups=1, call=None) -> Timing:
        """Time per call with the uploads (the segmented path's cost is its many writes), on the wall clock. Where
        the device has timestamp queries, also `kernel_ms`: the kernel's own GPU time with the inputs resident
        (time_where_kernel), and the clock canary's ratio beside it as `clock`. The wall clock's noise swamps the
        differences between one path's workgroup sizes; the kernel time tells them apart. `call`: (repeats,
        warmups) at most for the call with its uploads where the kernel is timed too (the tuner's space.json
        where_nd.call_timing); None: as the kernel's."""
        cond, x, y = check_where_args(cond, x, y)
        with self._lock:
            kernel_too = "timestamp-query" in self.features and np.broadcast(cond, x, y).size
            n, w = (min(repeats, call[0]), min(warmups, call[1])) if call and kernel_too else (repeats, warmups)
            wall = self._where_run(cond, x, y, params, max(1, n), w)[1]
            if not kernel_too:
                return wall
            kern = self.time_where_kernel(cond, x, y, params, repeats, warmups)[0]
            return dataclasses.replace(wall, kernel_ms=kern.median_ms, clock=kern.clock)

    @_device_faults
    def time_where_kernel(self, cond, x, y, params=None, repeats=5, warmups=1) -> tuple[Timing, np.ndarray]:
        """The where_nd kernel alone: inputs uploaded once as the path uploads them, then timed as TopK is
        (_timed_submit: timestamps and the clock guard where the device has them, else the wall clock). Returns the
        Timing and the output (to check)."""
        cond, x, y = check_where_args(cond, x, y)
        with self._lock:
            out_shape, numel, p = self._where_params(cond, x, y, params)
            if numel == 0:
                return Timing.of("wall", [0.0]), np.empty(out_shape, dtype=x.dtype)
            out = self._where_out(numel)
            ub, ins, bg = self._where_bind(cond, x, y, out_shape, numel, p, out)
            try:
                t = self._timed_submit([(self._where_pipeline(p), self._where_dims(numel, p))], bg, repeats, warmups)
                res = np.frombuffer(self._device.queue.read_buffer(out), dtype=x.dtype)[:numel]
                return t, res.reshape(out_shape).copy()
            finally:
                for b in (ub, *ins, out):
                    b.destroy()

    def _where_params(self, cond, x, y, params):
        self._ensure()
        out_shape = np.broadcast_shapes(cond.shape, x.shape, y.shape)
        numel = int(np.prod(out_shape, dtype=np.int64))
        return out_shape, numel, self._check_params("where_nd", {"ndim": len(out_shape), "numel": numel}, params)

    def _where_out(self, numel):
        u = self._wgpu.BufferUsage
        return self._buffer(size=numel * 4, usage=u.STORAGE | u.COPY_SRC, align=16)

    def _where_pipeline(self, p):
        return self._pipeline("where_nd", "where_strided" if p["path"] == "direct" else "where_dense", p)

    def _where_dims(self, numel, p):
        return (*_dims(where_groups(numel, p), self.limits.get("maxComputeWorkgroupsPerDimension", 65535)), 1)

    def _where_bind(self, cond, x, y, out_shape, numel, p, out):
        """Upload the inputs as the path does (direct: each view's memory span as it is; segmented: written out at
        the output shape) and bind them: returns (uniform buffer, input buffers, bind group)."""
        u = self._wgpu.BufferUsage
        if p["path"] == "direct":
            views = [strided_view(a, out_shape) for a in (cond, x, y)]
            ins = [self._buffer(span, usage=u.STORAGE, align=16) for span, _, _ in views]
            shape, strides = coalesce(out_shape, [st for _, _, st in views])
            uni = where_uniform(shape, numel, [(v[1], st) for v, st in zip(views, strides)])
        else:
            ins = [self._segmented_upload(a, out_shape) for a in (cond, x, y)]
            uni = where_uniform((numel,), numel, None)
        ub = self._buffer(uni, usage=u.UNIFORM)
        bgl, _ = self._layout("where_nd")
        bg = self._device.create_bind_group(layout=bgl, entries=[
            {"binding": i, "resource": {"buffer": b}} for i, b in enumerate([ub, *ins, out])])
        return ub, ins, bg

    def _where_run(self, cond, x, y, params, repeats, warmups):
        """Upload + kernel, `repeats` times after `warmups`, timed on the wall clock; returns the last output and
        the Timing."""
        out_shape, numel, p = self._where_params(cond, x, y, params)
        dtype = x.dtype
        if numel == 0:
            return np.empty(out_shape, dtype=dtype), Timing.of("wall", [0.0])
        dev = self._device
        pipe, dims = self._where_pipeline(p), self._where_dims(numel, p)
        out = self._where_out(numel)
        samples, result = [], None
        for it in range(warmups + max(1, repeats)):
            t0 = time.perf_counter()
            ub, ins, bg = self._where_bind(cond, x, y, out_shape, numel, p, out)
            enc = dev.create_command_encoder()
            cp = enc.begin_compute_pass()
            cp.set_pipeline(pipe)
            cp.set_bind_group(0, bg)
            cp.dispatch_workgroups(*dims)
            cp.end()
            dev.queue.submit([enc.finish()])
            self._sync()
            if it >= warmups:
                samples.append((time.perf_counter() - t0) * 1e3)
            for b in (ub, *ins):
                b.destroy()
        if repeats == 0:
            result = np.frombuffer(dev.queue.read_buffer(out), dtype=dtype)[:numel].reshape(out_shape).copy()
        out.destroy()
        return result, Timing.of("wall", samples)

    def _segmented_upload(self, a: np.ndarray, out_shape):
        """The segmented baseline: the input written out at full output shape, one queue write per output row
        (a contiguous segment), from the view as it is where the row is contiguous."""
        u = self._wgpu.BufferUsage
        full = np.broadcast_to(a, out_shape)
        item = a.dtype.itemsize
        numel = int(np.prod(out_shape, dtype=np.int64))
        if a.dtype == np.bool_:  # 1-byte elements: write whole 4-byte words only, so go through one copy
            return self._buffer(np.ascontiguousarray(full).reshape(-1), usage=u.STORAGE, align=16)
        buf = self._buffer(size=numel * item, usage=u.STORAGE | u.COPY_DST, align=16)
        inner = out_shape[-1] if out_shape else 1
        rows = full.reshape(-1, inner) if full.flags.c_contiguous else None
        if rows is not None:
            self._device.queue.write_buffer(buf, 0, np.ascontiguousarray(rows))
            return buf
        for r, idx in enumerate(np.ndindex(*out_shape[:-1])):
            seg = full[idx]
            if seg.strides[-1] != item:
                seg = np.ascontiguousarray(seg)
            self._device.queue.write_buffer(buf, r * inner * item, seg)
        return buf


def strided_view(a: np.ndarray, out_shape) -> tuple[np.ndarray, int, list[int]]:
    """The underlying memory of a (possibly non-contiguous, negative-stride) view as a contiguous uint8 span,
    without copying it, plus the byte offset of element (0, ..., 0) in that span and byte strides per output
    dimension (0 for broadcast dims)."""
    nd = len(out_shape)
    strides = [0] * (nd - a.ndim) + [0 if n == 1 else s for n, s in zip(a.shape, a.strides)]
    shape = [1] * (nd - a.ndim) + list(a.shape)
    lo = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + a.itemsize
    if a.size == 0:
        return np.zeros(4, np.uint8), 0, strides
    corner = a[tuple(slice(n - 1, n) if s < 0 else slice(0, 1) for n, s in zip(a.shape, a.strides))]
    span = np.lib.stride_tricks.as_strided(corner.reshape(-1).view(np.uint8), shape=(hi - lo,), strides=(1,))
    return span, -lo, strides


def coalesce(shape, strides_list):
    """Merge neighbouring dimensions that are contiguous with each other in every tensor (and drop size-1 ones),
    so the kernel's per-element index arithmetic runs over as few dimensions as possible: a contiguous case
    becomes 1-d, a reversed axis 2- or 3-d. Returns (shape, [strides per tensor])."""
    dims = [(n, [st[d] for st in strides_list]) for d, n in enumerate(shape) if n != 1]
    if not dims:
        return (1,), [[0] for _ in strides_list]
    out = [dims[0]]
    for n, sts in dims[1:]:
        pn, psts = out[-1]
        if all(ps == s * n for ps, s in zip(psts, sts)):
            out[-1] = (pn * n, sts)
        else:
            out.append((n, sts))
    return tuple(n for n, _ in out), [[sts[t] for _, sts in out] for t in range(len(strides_list))]


def where_groups(numel: int, params: dict) -> int:
    """Workgroups of a where_nd dispatch: each thread writes VPT runs of 4 output elements."""
    runs = -(-numel // 4)
    return -(-runs // (params["wg"] * params["vpt"]))


def where_runs(out_shape, views) -> bool:
    """Whether where_strided may read each run of 4 outputs (4r..4r+3) with one 16-byte load per input: the
    innermost extent is a multiple of 4 (a run stays in one row) and each input is either broadcast along it
    (stride 0: one scalar) or packed along it (x, y: stride 4 bytes, cond: 1 byte) with its base and every outer
    stride a multiple of the run's size (16 bytes; cond 4), so the run starts 16-byte (4-byte) aligned."""
    if not views or out_shape[-1] % 4:
        return False
    for (base, strides), item in zip(views, (1, 4, 4)):
        if strides[-1] == 0:
            continue
        if strides[-1] != item or base % (4 * item) or any(s % (4 * item) for s in strides[:-1]):
            return False
    return True


def where_uniform(out_shape, numel: int, views) -> np.ndarray:
    """The Params uniform of where_nd.wgsl; views = [(base, byte strides)] for cond, x, y (None: dense)."""
    nd = len(out_shape)
    u = np.zeros(40, dtype=np.uint32)
    u[0], u[1], u[2] = nd, numel, where_runs(out_shape, views)
    u[4:12] = 1
    u[4:4 + nd] = out_shape
    s = u.view(np.int32)
    for t in range(3):
        base, strides = views[t] if views else (0, None)
        if strides is not None:
            s[12 + 8 * t: 12 + 8 * t + nd] = strides
        s[36 + t] = base
    return u
